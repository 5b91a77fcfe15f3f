import type { Command } from 'commander';
import { RUNNER_DEFAULTS, resolveRunnerOptions } from '../../runner/runner';
import { serveMetrics, type MetricsServer } from '../../metrics/metrics';
import { resolveDashboardOptions } from '../../dashboard/options';
import { UsageError } from '../app';
import { count, withApp, firstSignal, startDashboard, DASHBOARD_TOKEN_HELP } from '../shared';

/** `coalesce run`. */
export function addRunCommand(program: Command): void {
  program
    .command('run')
    .description('Start the runner until SIGINT/SIGTERM, then stop gracefully (a second signal exits at once).')
    .option('--schedule <cron>', 'node-cron expression of the ticks', RUNNER_DEFAULTS.schedule)
    .option('--concurrency <n>', 'recomputes at once', count('--concurrency'), RUNNER_DEFAULTS.concurrency)
    .option('--max-per-tick <n>', 'most parents claimed per tick', count('--max-per-tick'), RUNNER_DEFAULTS.maxPerTick)
    .option('--max-tick-ms <ms>', 'a tick stops claiming after this long', count('--max-tick-ms'), RUNNER_DEFAULTS.maxTickMs)
    .option(
      '--stop-timeout-ms <ms>',
      'how long a stop waits for recomputes in flight',
      count('--stop-timeout-ms', 0),
      RUNNER_DEFAULTS.stopTimeoutMs,
    )
    .option(
      '--metrics-port <port>',
      'serve Prometheus metrics on <host>:<port>/metrics (0: any free port)',
      count('--metrics-port', 0),
    )
    .option('--metrics-host <host>', 'interface of the metrics endpoint', '127.0.0.1')
    .option('--dashboard-port <port>', 'serve the dashboard on <host>:<port> (0: any free port)', count('--dashboard-port', 0))
    .option('--dashboard-host <host>', 'interface of the dashboard', '127.0.0.1')
    .option('--dashboard-token <token>', DASHBOARD_TOKEN_HELP, process.env.COALESCE_DASHBOARD_TOKEN)
    .action(
      async (o: {
        schedule: string;
        concurrency: number;
        maxPerTick: number;
        maxTickMs: number;
        stopTimeoutMs: number;
        metricsPort?: number;
        metricsHost: string;
        dashboardPort?: number;
        dashboardHost: string;
        dashboardToken?: string;
      }) => {
        const options = {
          schedule: o.schedule,
          concurrency: o.concurrency,
          maxPerTick: o.maxPerTick,
          maxTickMs: o.maxTickMs,
          stopTimeoutMs: o.stopTimeoutMs,
        };
        // A bad schedule or dashboard option is said before the app is loaded, services up or not.
        resolveRunnerOptions(options);
        const dashboard =
          o.dashboardPort === undefined
            ? undefined
            : { port: o.dashboardPort, host: o.dashboardHost, ...(o.dashboardToken ? { token: o.dashboardToken } : {}) };
        if (dashboard) resolveDashboardOptions(dashboard);
        await withApp(program, async (coalescer) => {
          const runner = coalescer.runner(options);
          let metrics: MetricsServer | undefined;
          if (o.metricsPort !== undefined) {
            const where = `${o.metricsHost}:${o.metricsPort}`;
            metrics = await serveMetrics(coalescer, runner, o.metricsPort, o.metricsHost).catch((error: unknown) => {
              throw new UsageError(`--metrics-port: cannot listen on ${where}: ${(error as Error).message}`, { cause: error });
            });
            process.stderr.write(`coalesce: metrics on http://${o.metricsHost}:${metrics.port}/metrics\n`);
          }
          const dashboardServer = dashboard && (await startDashboard(coalescer, { ...dashboard, runner }, '--dashboard-port'));
          runner.start();
          process.stderr.write(
            `coalesce: running namespace "${coalescer.namespace}" on "${o.schedule}"; SIGINT or SIGTERM stops it\n`,
          );
          const signal = await firstSignal();
          process.stderr.write(
            `coalesce: ${signal}: stopping (recomputes in flight finish, up to --stop-timeout-ms; a second signal exits at once)\n`,
          );
          await runner.stop();
          await metrics?.close();
          await dashboardServer?.close();
          const { ticks, skipped } = runner.counts;
          process.stderr.write(
            `coalesce: stopped after ${ticks} tick${ticks === 1 ? '' : 's'} (${skipped} skipped while one was running)\n`,
          );
        });
      },
    );
}
