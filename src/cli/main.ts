#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import type { ObjectLiteral } from 'typeorm';
import type { Coalescer } from '../coalescer';
import { ConfigError, RegistrationError, isUnreachable } from '../errors';
import { heatOf } from '../redis/score';
import { serveMetrics, type MetricsServer } from '../metrics/metrics';
import { serveDashboard, type DashboardServer } from '../dashboard/server';
import { resolveDashboardOptions, type DashboardOptions } from '../dashboard/options';
import { RUNNER_DEFAULTS, resolveRunnerOptions } from '../runner/runner';
import { closeApp, loadApp, UsageError } from './app';
import { addTriggersCommand } from './triggers';
import { Progress } from './progress';
import { markAll } from '../ops/rebuild';
import { addVerifyCommand } from './verify';

/** Exit codes, as `coalesce --help` lists them. */
export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2, unreachable: 3, interrupted: 130 });

const EXIT_HELP = `
Exit codes:
  0    done
  1    some recomputes failed (they are retried or dead-lettered), verify found drift it did
       not repair, or an unexpected error
  2    usage error: bad arguments, a bad --app module, an unknown parent, a bad option
  3    Redis or the database (PostgreSQL, MySQL/MariaDB) cannot be reached, or refuses us
  130  a second SIGINT/SIGTERM during a graceful stop

Logs are the app's logger's; the default one writes warnings and errors to stderr as human
lines (COALESCE_LOG_FORMAT=json for pino's JSON), and COALESCE_LOG_LEVEL=info adds one line per
runner tick.

The --app module (or COALESCE_APP): a JavaScript module, CommonJS or ESM (compile TypeScript
first), whose default export is a Coalescer, or a function (possibly async) returning one, with
its DataSource initialized and its parents and children registered. The CLI closes both the
Coalescer and its DataSource on exit. The demo's, in short (examples/shop/app.ts, built to
dist/examples/shop/app.js):
  export default async function createApp() {
    await dataSource.initialize();
    const coalescer = new Coalescer({ dataSource, redis: process.env.REDIS_URL });
    coalescer.parent(Order, {
      aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) },
    });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    return coalescer;
  }
(a hand-written recompute: { recompute: async (id, { manager, signal }) => ... } instead)`;

function count(name: string, min = 1) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be a whole number >= ${min}, got "${value}"`);
    return n;
  };
}

interface Globals {
  app: string;
  verbose?: boolean;
}

/** Loads the app, checks both services answer, runs `fn`, and always closes what the app opened. */
async function withApp<T>(globals: Globals, fn: (coalescer: Coalescer) => Promise<T>): Promise<T> {
  const coalescer = await loadApp(globals.app);
  try {
    await coalescer.ping();
    return await fn(coalescer);
  } finally {
    await closeApp(coalescer);
  }
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

/** Resolves with the first SIGINT/SIGTERM; a second one exits at once with {@link EXIT.interrupted}. */
function firstSignal(): Promise<NodeJS.Signals> {
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
async function startDashboard(coalescer: Coalescer, options: DashboardOptions, portOption: string): Promise<DashboardServer> {
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
const DASHBOARD_TOKEN_HELP =
  'secret every dashboard request must carry, required off loopback (default: $COALESCE_DASHBOARD_TOKEN)';

function ms(value: number | null): string {
  if (value === null) return '-';
  if (value < 1000) return `${value} ms`;
  return `${(value / 1000).toFixed(1)} s`;
}

export function buildProgram(): Command {
  const program = new Command('coalesce')
    .description(
      'Run and inspect a typeorm-coalesce namespace: the runner, one drain, status, marks, rebuilds, verify, dead letters.',
    )
    .requiredOption('--app <module>', 'JavaScript module exporting the Coalescer (see below)', process.env.COALESCE_APP)
    .option('--verbose', 'print stack traces with errors')
    // Usage errors come back as exceptions, so they get exit code 2 like every other usage error.
    .exitOverride()
    // Commander's errors are one line too, in the same voice as ours.
    .configureOutput({
      outputError: (text, write) => write(`coalesce: ${text.replace(/^error: /, '').trimEnd()} (see --help)\n`),
    })
    .addHelpText('after', EXIT_HELP);

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
        await withApp(program.opts<Globals>(), async (coalescer) => {
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
      await withApp(program.opts<Globals>(), async (coalescer) => {
        const server = await startDashboard(coalescer, options, '--port');
        const signal = await firstSignal();
        process.stderr.write(`coalesce: ${signal}: stopping the dashboard\n`);
        await server.close();
      });
    });

  program
    .command('drain')
    .description('Drain once: recompute every pending parent (and those marked meanwhile), then exit.')
    .option('--once', 'one full drain (the only mode; kept for clarity in scripts)')
    .option('--concurrency <n>', 'recomputes at once', count('--concurrency'), 4)
    .option('--max <n>', 'stop after claiming this many parents', count('--max'))
    .option('--max-ms <ms>', 'stop claiming after this long (what is claimed finishes)', count('--max-ms'))
    .option('--json', 'print the summary as JSON')
    .action(async (o: { concurrency: number; max?: number; maxMs?: number; json?: boolean }) => {
      await withApp(program.opts<Globals>(), async (coalescer) => {
        const bar = new Progress('drain');
        const r = await coalescer.drain({
          concurrency: o.concurrency,
          ...(o.max === undefined ? {} : { max: o.max }),
          ...(o.maxMs === undefined ? {} : { maxMs: o.maxMs }),
          onProgress: (p) =>
            bar.update(p.recomputed + p.failed, Math.max(p.pendingAtStart, p.claimed), `lost races ${p.lostRaces}`),
        });
        bar.done();
        if (o.json) print(JSON.stringify(r));
        else {
          print(`recomputed ${r.recomputed} of ${r.claimed} claimed in ${ms(r.durationMs)}`);
          print(
            `failed ${r.failed} (dead-lettered ${r.deadLettered}), marked again meanwhile ${r.rearmed}, lost races ${r.lostRaces}`,
          );
          if (r.reaped > 0) print(`expired leases given back first: ${r.reaped}`);
        }
        if (r.failed > 0) process.exitCode = EXIT.failed;
      });
    });

  program
    .command('status')
    .description('Pending, in flight, expired leases, retries, dead, lag and the hottest parents.')
    .option('--json', 'print as JSON')
    .option('--top <n>', 'how many of the hottest parents to list', count('--top', 0), 10)
    .action(async (o: { json?: boolean; top: number }) => {
      await withApp(program.opts<Globals>(), async (coalescer) => {
        const [s, hottest] = await Promise.all([coalescer.stats(), o.top > 0 ? coalescer.hottest(o.top) : []]);
        const { marker: _marker, ...stats } = s;
        if (o.json) {
          print(JSON.stringify({ namespace: coalescer.namespace, ...stats, hottest }));
          return;
        }
        print(`namespace       ${coalescer.namespace}`);
        print(`pending         ${s.pending}`);
        print(`in flight       ${s.inflight}`);
        print(`expired leases  ${s.expired}`);
        print(`retrying        ${s.delayed}`);
        if (s.settling > 0) print(`settling        ${s.settling}`);
        if (s.overdue > 0) print(`overdue         ${s.overdue}`);
        if (s.dead > 0) print(`dead            ${s.dead}   (coalesce dead list)`);
        if (s.outbox === null) print('outbox          table missing: run the CoalesceOutbox migration');
        else if (s.outbox > 0) print(`outbox          ${s.outbox}   (marks waiting for Redis; the next drain relays them)`);
        print(`oldest pending  ${ms(s.oldestPendingMs)}`);
        print(`wait p50 / p99  ${ms(s.wait.p50Ms)} / ${ms(s.wait.p99Ms)}   (first mark to recompute, last ${s.wait.samples})`);
        if (hottest.length > 0) {
          print('hottest:');
          for (const h of hottest) print(`  ${String(h.heat).padStart(8)}  ${h.member}`);
        }
      });
    });

  program
    .command('mark')
    .description('Mark parents by id, e.g. after a bulk SQL change the subscriber cannot see.')
    .argument('<parent>', 'parent entity name, e.g. Order')
    .argument('<id...>', 'ids to mark')
    .action(async (parent: string, ids: string[]) => {
      await withApp(program.opts<Globals>(), async (coalescer) => {
        coalescer.registry.parentOf(parent);
        const n = await coalescer.mark(parent, ids);
        print(`marked ${n} ${parent} parent${n === 1 ? '' : 's'}`);
      });
    });

  program
    .command('rebuild')
    .description('Mark every row of a parent type, in batches by primary key (after a new recompute formula, or an outage).')
    .argument('<parent>', 'parent entity name, e.g. Order')
    .option('--batch <n>', 'rows read and marked per batch', count('--batch'), 1000)
    .action(async (name: string, o: { batch: number }) => {
      await withApp(program.opts<Globals>(), async (coalescer) => {
        const parent = coalescer.registry.parentOf(name);
        const total = await coalescer.options.dataSource.getRepository<ObjectLiteral>(parent.metadata.target).count();
        const bar = new Progress(`rebuild ${name}`);
        const marked = await markAll(coalescer.options.dataSource, parent, (ids) => coalescer.mark(parent.name, ids), {
          batch: o.batch,
          onPage: (n) => bar.update(n, Math.max(total, n)),
        });
        bar.done();
        print(`marked ${marked} ${name} parent${marked === 1 ? '' : 's'}; the runner (or coalesce drain) recomputes them`);
      });
    });

  addVerifyCommand(program, {
    withApp: (fn) => withApp(program.opts<Globals>(), fn),
    count,
    print,
    ms,
    failedCode: EXIT.failed,
  });

  program
    .command('state')
    .description('One parent: waiting or not, heat, age of its first change, in flight, retrying, dead.')
    .argument('<parent>', 'parent entity name, e.g. Order')
    .argument('<id>', 'its id')
    .option('--json', 'print as JSON')
    .action(async (parent: string, id: string, o: { json?: boolean }) => {
      await withApp(program.opts<Globals>(), async (coalescer) => {
        const s = await coalescer.state(parent, id);
        if (o.json) {
          print(JSON.stringify(s));
          return;
        }
        const what = s.dead
          ? `dead (attempts ${s.dead.attempts}): ${s.dead.error}`
          : s.inflight
            ? 'being recomputed now'
            : s.retrying
              ? `retrying (attempts ${s.retrying.attempts})`
              : s.settling
                ? 'settling'
                : s.waiting
                  ? 'pending'
                  : 'fresh';
        print(`${s.member}  ${what}`);
        if (s.waiting) print(`  heat ${s.heat}, first change ${ms(s.firstMarkAgeMs)} ago`);
        if (s.changedMeanwhile > 0) print(`  changed ${s.changedMeanwhile} times meanwhile: one more recompute follows`);
        if (s.kept) print('  a change waits in the outbox (made while Redis was away): the next drain relays it');
      });
    });

  program
    .command('watch')
    .description("Print the namespace's live events (recomputed, failed, drained) from every process until SIGINT/SIGTERM.")
    .option('--json', 'one JSON object per event')
    .action(async (o: { json?: boolean }) => {
      await withApp(program.opts<Globals>(), async (coalescer) => {
        const subscription = await coalescer.subscribe((e) => {
          if (o.json) print(JSON.stringify(e));
          else if (e.type === 'recomputed') print(`recomputed  ${e.member}  ${e.durationMs} ms  (${e.worker})`);
          else if (e.type === 'failed') {
            print(`failed      ${e.member}  attempt ${e.attempt}${e.dead ? ', dead' : ''}: ${e.error}  (${e.worker})`);
          } else {
            const r = e.result;
            print(
              `drained     ${r.recomputed} recomputed, ${r.failed} failed, ${r.lostRaces} lost races in ${ms(r.durationMs)}  (${e.worker})`,
            );
          }
        });
        process.stderr.write(`coalesce: watching namespace "${coalescer.namespace}"; SIGINT or SIGTERM stops\n`);
        await firstSignal();
        await subscription.close();
      });
    });

  const dead = program.command('dead').description('Dead-lettered parents: list, retry, purge.');
  dead
    .command('list')
    .description('List dead parents, oldest first, with their last error.')
    .option('--limit <n>', 'how many', count('--limit'), 100)
    .option('--json', 'print as JSON')
    .action(async (o: { limit: number; json?: boolean }) => {
      await withApp(program.opts<Globals>(), async (coalescer) => {
        const list = await coalescer.dead.list({ limit: o.limit });
        if (o.json) print(JSON.stringify(list));
        else if (list.length === 0) print('no dead parents');
        else
          for (const d of list)
            print(`${d.member}  attempts ${d.attempts}  heat ${heatOf(d.score)}  ${new Date(d.at).toISOString()}  ${d.error}`);
      });
    });
  for (const [verb, what] of [
    ['retry', 'Give dead parents a fresh start (back to pending).'],
    ['purge', 'Remove dead parents for good.'],
  ] as const) {
    dead
      .command(verb)
      .description(what)
      .argument('[member...]', 'members such as Order:42')
      .option('--all', `${verb} every dead parent`)
      .action(async (members: string[], o: { all?: boolean }) => {
        if (!o.all && members.length === 0) throw new UsageError(`dead ${verb}: name members (e.g. Order:42) or pass --all`);
        await withApp(program.opts<Globals>(), async (coalescer) => {
          const n = await coalescer.dead[verb](o.all ? 'all' : members);
          print(`${verb === 'retry' ? 'retried' : 'purged'} ${n} dead parent${n === 1 ? '' : 's'}`);
        });
      });
  }
  addTriggersCommand(program, print);
  return program;
}

/** Exit code and one-line message for an error. */
export function describeError(error: unknown): { code: number; message: string } {
  if (error instanceof CommanderError) {
    // Commander has printed the message (or the help) already. Help asked for exits 0; help
    // shown because no command was given is a usage error.
    return { code: error.exitCode === 0 ? EXIT.ok : EXIT.usage, message: '' };
  }
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof UsageError || error instanceof RegistrationError || error instanceof ConfigError) {
    return { code: EXIT.usage, message };
  }
  const text = `${message} ${String((error as { code?: unknown })?.code ?? '')}`;
  if (isUnreachable(error) || /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|max retries per request/i.test(text)) {
    return { code: EXIT.unreachable, message: `${message} (is the service running? see README)` };
  }
  return { code: EXIT.failed, message };
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const { code, message } = describeError(error);
    if (message) process.stderr.write(`coalesce: ${message.split('\n')[0]}\n`);
    if (program.opts<Globals>().verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    process.exitCode = code;
  }
}

if (require.main === module) {
  void main(process.argv).then(() => {
    // The app's pools may hold timers: once the command is done, the process is.
    setImmediate(() => process.exit(process.exitCode ?? EXIT.ok));
  });
}
