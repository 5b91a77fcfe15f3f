// The runner of the contention benchmark's forked variants, in a process of its own as a
// deployment's worker is, so the writers' event loop is not the runner's. For each
// { start: true } it makes a Coalescer on the writers' namespace with the documented defaults
// (no options but the namespace; the shop's recomputeMany; the lines captured as BENCH_CAPTURE
// says, so with 'triggers' attach() starts the outbox relay here), starts a runner on
// BENCH_SCHEDULE (the in-process variants' schedule; its other options are the defaults) and
// replies { started: true }. For { stop: true } it stops the runner, drains what is left, closes
// the Coalescer and replies with the recomputes it made. { exit: true } ends the process.
import { Coalescer, type Runner } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { recomputeOrders } from '../examples/shop/recompute';
import { shopDataSource } from './util';

/** What the parent sends. */
export type RunnerRequest = { start: true } | { stop: true } | { exit: true };

/** What the runner process replies: ready once connected, then one reply per start and stop. */
export type RunnerReply = { ready: true } | { started: true } | { stopped: { recomputes: number; ticks: number } };

const send = (reply: RunnerReply): void => {
  process.send?.(reply);
};

function fail(error: unknown): never {
  process.stderr.write(`bench contention runner: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const capture = process.env.BENCH_CAPTURE === 'triggers' ? 'triggers' : 'subscriber';
  // The runner's recomputes (concurrency 4), the relay and the housekeeping.
  const ds = await shopDataSource(process.env.DATABASE_URL as string, process.env.BENCH_SCHEMA as string, 6);
  let current: { coalescer: Coalescer; runner: Runner; recomputes: number } | undefined;

  const start = async (): Promise<void> => {
    const coalescer = new Coalescer({
      dataSource: ds,
      redis: process.env.REDIS_URL as string,
      namespace: process.env.BENCH_NAMESPACE,
    });
    coalescer.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture });
    const run = { coalescer, runner: coalescer.runner({ schedule: process.env.BENCH_SCHEDULE as string }), recomputes: 0 };
    coalescer.on('recomputed', () => {
      run.recomputes += 1;
    });
    await coalescer.attach();
    run.runner.start();
    current = run;
  };
  const stop = async (): Promise<{ recomputes: number; ticks: number }> => {
    const run = current;
    if (!run) throw new Error('stop without a start');
    current = undefined;
    await run.runner.stop();
    // The marks the runner left (and, with triggers, the outbox: every drain relays it first).
    await run.coalescer.drain({ concurrency: 4 });
    await run.coalescer.close();
    return { recomputes: run.recomputes, ticks: run.runner.counts.ticks };
  };

  // One request at a time: the parent waits for each reply before it sends the next.
  process.on('message', (m: RunnerRequest) => {
    if ('exit' in m) {
      void (current ? stop().then(() => undefined) : Promise.resolve()).then(() => ds.destroy()).finally(() => process.exit(0));
    } else if ('start' in m) {
      start().then(() => send({ started: true }), fail);
    } else if ('stop' in m) {
      stop().then((stopped) => send({ stopped }), fail);
    }
  });
  send({ ready: true });
}

main().catch(fail);
