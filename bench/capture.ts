import type { DataSource } from 'typeorm';
import { Redis } from 'ioredis';
import { Coalescer } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { recomputeOrders } from '../examples/shop/recompute';
import { benchDataSource, progress } from './util';
import { median, quantile, round } from './figure';
import { relayFigures, relayLatency, type RelayFigures } from './relay';

export interface CaptureBenchOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Measured rounds; each round saves one form with every variant. */
  rounds: number;
  /** Children saved per transaction. @defaultValue 50 */
  children?: number;
  /** Saves followed by `fresh()` per read-your-writes mode. @defaultValue 30 */
  freshSamples?: number;
  /** Raw-SQL commits timed to their mark in Redis through the triggers' relay. @defaultValue 60 */
  relaySamples?: number;
}

/** Ms from a save's commit to its `fresh()` resolving. */
export interface FreshFigures {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Milliseconds per transaction of one variant. */
export interface CaptureFigures {
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** Median over bare TypeORM's median. */
  ratio: number;
}

export interface CaptureBenchResult {
  children: number;
  rounds: number;
  bare: CaptureFigures;
  subscriber: CaptureFigures;
  triggers: CaptureFigures;
  /**
   * Trigger capture's relay: ms from a raw-SQL commit (one line of a new order, at random
   * moments 0-1 s apart, so the poll is found in every state of its backoff) to the order's mark
   * in Redis, with the default `relayPoll`.
   */
  relay: RelayFigures;
  /**
   * Read your writes, subscriber capture: `fresh()` waiting for a runner ticking every second
   * (its wait includes up to a tick), and `fresh({ now: true })` recomputing in the caller.
   */
  fresh: { runnerSchedule: string; runner: FreshFigures; now: FreshFigures };
}

type Variant = 'bare' | 'subscriber' | 'triggers';
const VARIANTS: readonly Variant[] = ['bare', 'subscriber', 'triggers'];

/**
 * The save path with each capture mode: one transaction saving `children` lines of a new order
 * (an admin form) with bare TypeORM, with the capture subscriber, and with trigger capture (the
 * triggers write the outbox inside the transaction; the coalescer polls it and relays in the
 * background, as in production), then the trigger relay's latency. Rounds interleave the variants, in a rotating order, so they
 * share the machine's weather; medians, minima and maxima in ms.
 */
export async function benchCapture(o: CaptureBenchOptions): Promise<CaptureBenchResult> {
  const children = o.children ?? 50;
  const ds: DataSource & { drop(): Promise<void> } = await benchDataSource(o.databaseUrl, `bench_capture_${process.pid}`);
  const coalescer = (capture: 'subscriber' | 'triggers'): Coalescer => {
    const c = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace: `bench-capture-${capture}-${process.pid}` });
    c.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture });
    return c;
  };
  const subscribed = coalescer('subscriber');
  const triggered = coalescer('triggers');
  const lines = ds.getMetadata(OrderLine).tablePath;
  try {
    const qr = ds.createQueryRunner();
    await new (triggered.triggerMigration())().up(qr);
    await qr.release();
    await triggered.listen();
    const orders = ds.getRepository(Order);
    const form = async (): Promise<number> => {
      const order = await orders.save({ customer: 'bench' });
      const t = performance.now();
      await ds.transaction(async (m) => {
        await m.save(
          Array.from({ length: children }, (_, i) =>
            m.create(OrderLine, { orderId: order.id, sku: `b${i}`, qty: 1 + (i % 5), unitPrice: '9.99' }),
          ),
        );
      });
      return performance.now() - t;
    };
    // Every variant switch runs the same ALTER, so each starts from the same invalidated caches.
    const set = async (variant: Variant): Promise<void> => {
      subscribed.detach();
      triggered.detach();
      await ds.query(`ALTER TABLE ${lines} ${variant === 'triggers' ? 'ENABLE' : 'DISABLE'} TRIGGER USER`);
      if (variant === 'subscriber') await subscribed.attach();
      if (variant === 'triggers') await triggered.attach();
    };
    const times: Record<Variant, number[]> = { bare: [], subscriber: [], triggers: [] };
    for (const v of VARIANTS) {
      await set(v);
      for (let i = 0; i < 10; i += 1) await form();
    }
    for (let r = 0; r < o.rounds; r += 1) {
      if (r % 50 === 0) progress(`capture: round ${r + 1}/${o.rounds}`);
      for (let k = 0; k < VARIANTS.length; k += 1) {
        const v = VARIANTS[(r + k) % VARIANTS.length] as Variant;
        await set(v);
        times[v].push(await form());
      }
    }
    const relayTimes = await relayed(ds, o.redisUrl, triggered.namespace, set, o.relaySamples ?? 60);
    const freshTimes = await readYourWrites(ds, subscribed, set, o.freshSamples ?? 30);
    const bare = median(times.bare);
    const figures = (v: Variant): CaptureFigures => ({
      medianMs: round(median(times[v]), 3),
      minMs: round(Math.min(...times[v]), 3),
      maxMs: round(Math.max(...times[v]), 3),
      ratio: round(median(times[v]) / bare, 3),
    });
    return {
      children,
      rounds: o.rounds,
      bare: figures('bare'),
      subscriber: figures('subscriber'),
      triggers: figures('triggers'),
      relay: relayFigures(relayTimes),
      fresh: { runnerSchedule: RUNNER_SCHEDULE, runner: freshFigures(freshTimes.runner), now: freshFigures(freshTimes.now) },
    };
  } finally {
    for (const c of [subscribed, triggered]) {
      await c.reset().catch(() => undefined);
      await c.close();
    }
    await ds.drop();
  }
}

/** The runner's schedule while `fresh()` is measured: every second. */
const RUNNER_SCHEDULE = '* * * * * *';

const freshFigures = (ms: readonly number[]): FreshFigures => ({
  samples: ms.length,
  p50Ms: round(quantile(ms, 0.5), 1),
  p99Ms: round(quantile(ms, 0.99), 1),
  maxMs: round(Math.max(...ms), 1),
});

/** Times `samples` raw-SQL commits, at random moments, to their mark relayed to Redis. */
async function relayed(
  ds: DataSource,
  redisUrl: string,
  namespace: string,
  set: (variant: Variant) => Promise<void>,
  samples: number,
): Promise<number[]> {
  await set('triggers');
  const redis = new Redis(redisUrl);
  const lines = ds.getMetadata(OrderLine).tablePath;
  const out: number[] = [];
  try {
    for (let i = 0; i < samples; i += 1) {
      progress(`capture: trigger relay, ${i + 1}/${samples}`);
      const order = await ds.getRepository(Order).save({ customer: 'relay' });
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 1_000));
      out.push(
        await relayLatency(redis, namespace, `Order:${order.id}`, () =>
          ds.query(`INSERT INTO ${lines} (order_id, sku, qty, unit_price) VALUES ($1, 'r', 1, 1.00)`, [order.id]),
        ),
      );
    }
  } finally {
    redis.disconnect();
  }
  return out;
}

/**
 * Saves a line of an order, then times from the commit to `fresh()` of the order resolving:
 * `samples` times with a runner draining, then `samples` times with `{ now: true }`. Each
 * sample checks that the order's stored count includes the line.
 */
async function readYourWrites(
  ds: DataSource,
  coalescer: Coalescer,
  set: (variant: Variant) => Promise<void>,
  samples: number,
): Promise<{ runner: number[]; now: number[] }> {
  await set('subscriber');
  const order = await ds.getRepository(Order).save({ customer: 'fresh' });
  await coalescer.drain();
  const sample = async (now: boolean): Promise<number> => {
    await ds.getRepository(OrderLine).save({ orderId: order.id, sku: 'f', qty: 1, unitPrice: '1.00' });
    const t = performance.now();
    await coalescer.fresh(Order, order.id, { timeoutMs: 30_000, now });
    const ms = performance.now() - t;
    const lines = await ds.getRepository(OrderLine).countBy({ orderId: order.id });
    const stored = await ds.getRepository(Order).findOneByOrFail({ id: order.id });
    if (stored.lineCount !== lines) throw new Error(`fresh() resolved with ${stored.lineCount} of ${lines} lines counted`);
    return ms;
  };
  const out = { runner: [] as number[], now: [] as number[] };
  const runner = coalescer.runner({ schedule: RUNNER_SCHEDULE, concurrency: 4 });
  runner.start();
  try {
    for (let i = 0; i < samples; i += 1) {
      progress(`capture: fresh() under a runner, ${i + 1}/${samples}`);
      // Saves land anywhere between two ticks, as a user's would.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 1_000));
      out.runner.push(await sample(false));
    }
  } finally {
    await runner.stop();
  }
  for (let i = 0; i < samples; i += 1) out.now.push(await sample(true));
  return out;
}

// `node dist/bench/capture.js [rounds]` runs it alone and prints the figures as JSON.
if (require.main === module) {
  const rounds = Number(process.argv[2] ?? 300);
  benchCapture({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    rounds,
  }).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: unknown) => {
      process.stderr.write(`bench capture: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
