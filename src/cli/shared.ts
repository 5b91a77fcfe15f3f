import { InvalidArgumentError, type Command } from 'commander';
import type { Coalescer } from '../coalescer';
import { ConfigError } from '../errors';
import { serveDashboard, type DashboardServer } from '../dashboard/server';
import type { DashboardOptions } from '../dashboard/options';
import { closeApp, loadApp, UsageError } from './app';

// What the commands share: exit codes, option parsers, loading the app, output and signals.

/** Exit codes, as `coalesce --help` lists them. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, unreachable: 3, interrupted: 130 });

/** An option parser for a whole number >= `min`, naming the option when it is not. */
export function count(name: string, min = 1) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got "${value}"`);
    return n;
  };
}

export interface Globals {
  app: string;
  verbose?: boolean;
}

/** Loads the `--app` module, checks both services answer, runs `fn`, and always closes what the app opened. */
export async function withApp<T>(program: Command, fn: (coalescer: Coalescer) => Promise<T>): Promise<T> {
  const coalescer = await loadApp(program.opts<Globals>().app);
  try {
    await coalescer.ping();
    return await fn(coalescer);
  } finally {
    await closeApp(coalescer);
  }
}

export const print = (line: string): void => void process.stdout.write(`${line}\n`);

/** Resolves with the first SIGINT/SIGTERM; a second one exits at once with {@link EXIT.interrupted}. */
export function firstSignal(): Promise<NodeJS.Signals> {
  return new Promise<NodeJS.Signals>((resolve) => {
    const once = (sig: NodeJS.Signals): void => {
      process.removeListener('SIGINT', once);
      process.removeListener('SIGTERM', once);
      process.once('SIGINT', () => process.exit(EXIT.interrupted));
      process.once('SIGTERM', () => process.exit(EXIT.interrupted));
      resolve(sig);
    };
    process.on('SIGINT', once);
    process.on('SIGTERM', once);
  });
}

/** Starts the dashboard for the CLI: a port it cannot take is a usage error naming the option. */
export async function startDashboard(
  coalescer: Coalescer,
  options: DashboardOptions,
  portOption: string,
): Promise<DashboardServer> {
  const server = await serveDashboard(coalescer, options).catch((error: unknown) => {
    if (error instanceof ConfigError) throw error;
    const where = `${options.host ?? '127.0.0.1'}:${options.port}`;
    throw new UsageError(`${portOption}: cannot listen on ${where}: ${(error as Error).message}`, { cause: error });
  });
  const hint = options.token === undefined ? '' : ' (open it with ?token=<your token>)';
  process.stderr.write(`coalesce: dashboard of namespace "${coalescer.namespace}" on ${server.url}${hint}\n`);
  return server;
}

/** Help of the dashboard's token options; the environment variable keeps the token out of `ps`. */
export const DASHBOARD_TOKEN_HELP =
  'secret every dashboard request must carry, required off loopback (default: $COALESCE_DASHBOARD_TOKEN)';

/** A duration for people. */
export function ms(value: number | null): string {
  if (value === null) return '-';
  if (value < 1000) return `${value} ms`;
  return `${(value / 1000).toFixed(1)} s`;
}
