import type { Command } from 'commander';
import { resolveDashboardOptions } from '../../dashboard/options';
import { count, withApp, firstSignal, startDashboard, DASHBOARD_TOKEN_HELP } from '../shared';

/** `coalesce dashboard`. */
export function addDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description(
      'Serve a live page of the namespace (figures, lag plots, hottest and dead parents with retry/purge) until SIGINT/SIGTERM.',
    )
    .requiredOption('--port <port>', 'port to listen on (0: any free port)', count('--port', 0))
    .option('--host <host>', 'interface to listen on; anything but loopback needs --token', '127.0.0.1')
    .option('--token <token>', DASHBOARD_TOKEN_HELP, process.env.COALESCE_DASHBOARD_TOKEN)
    .action(async (o: { port: number; host: string; token?: string }) => {
      const options = { port: o.port, host: o.host, ...(o.token ? { token: o.token } : {}) };
      // A host off loopback without a token is refused before the app is loaded.
      resolveDashboardOptions(options);
      await withApp(program, async (coalescer) => {
        const server = await startDashboard(coalescer, options, '--port');
        const signal = await firstSignal();
        process.stderr.write(`coalesce: ${signal}: stopping the dashboard\n`);
        await server.close();
      });
    });
}
