#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ConfigError, RegistrationError, isUnreachable } from '../errors';
import { UsageError } from './app';
import { EXIT, count, ms, print, withApp, type Globals } from './shared';
import { addRunCommand } from './commands/run';
import { addDashboardCommand } from './commands/dashboard';
import { addDrainCommand } from './commands/drain';
import { addStatusCommand } from './commands/status';
import { addMarkCommand } from './commands/mark';
import { addRebuildCommand } from './commands/rebuild';
import { addVerifyCommand } from './commands/verify';
import { addStateCommand } from './commands/state';
import { addWatchCommand } from './commands/watch';
import { addDeadCommand } from './commands/dead';
import { addTriggersCommand } from './commands/triggers';

export { EXIT } from './shared';

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
its DataSource initialized, its parents and children registered, and attach() called (so that
what the runner's recomputes save through TypeORM is captured, as in the app itself). The CLI
closes both the Coalescer and its DataSource on exit. As examples/shop/app.ts does it:
  // app.ts, compiled to app.js
  import { Coalescer, count, sum } from 'typeorm-coalesce';
  import { dataSource } from './data-source';
  import { Order, OrderLine } from './entities';

  export default async function createApp() {
    if (!dataSource.isInitialized) await dataSource.initialize();
    const coalescer = new Coalescer({ dataSource, redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
    coalescer.parent(Order, {
      aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) },
    });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    await coalescer.attach();
    return coalescer;
  }
(a hand-written recompute: { recompute: async (id, { manager, signal }) => ... } instead)`;

/** The `coalesce` program: global options, help, and one command per file of commands/. */
export function buildProgram(): Command {
  const program = new Command('coalesce')
    .description(
      'Run and inspect a typeorm-coalesce namespace: the runner, one drain, status, marks, rebuilds, verify, dead letters.',
    )
    .requiredOption(
      '--app <module>',
      'JavaScript module exporting the Coalescer (see below; default: $COALESCE_APP)',
      process.env.COALESCE_APP || undefined,
    )
    .option('--verbose', 'print stack traces with errors')
    // Usage errors come back as exceptions, so they get exit code 2 like every other usage error.
    .exitOverride()
    // Commander's errors are one line too, in the same voice as ours.
    .configureOutput({
      outputError: (text, write) => write(`coalesce: ${explain(text.replace(/^error: /, '').trimEnd())} (see --help)\n`),
    })
    .addHelpText('after', EXIT_HELP);

  addRunCommand(program);
  addDashboardCommand(program);
  addDrainCommand(program);
  addStatusCommand(program);
  addMarkCommand(program);
  addRebuildCommand(program);
  addVerifyCommand(program, {
    withApp: (fn) => withApp(program, fn),
    count,
    print,
    ms,
    failedCode: EXIT.failed,
  });

  addStateCommand(program);
  addWatchCommand(program);
  addDeadCommand(program);
  addTriggersCommand(program, print);
  return program;
}

/** Commander's message, with what to do where it does not say it. */
function explain(message: string): string {
  if (/option '--app <module>' not specified/.test(message)) {
    return `${message}: give --app <module.js>, your compiled module exporting the Coalescer, or set COALESCE_APP`;
  }
  return message;
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
    // A message that says what to check already (Redis' do) gets no second hint.
    const hinted = /\((?:is|check) [^()]*\)$/.test(message);
    return { code: EXIT.unreachable, message: hinted ? message : `${message} (is the service running? see README)` };
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
