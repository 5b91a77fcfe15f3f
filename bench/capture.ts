import type { DataSource } from 'typeorm';
import { Coalescer } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { recomputeOrders } from '../examples/shop/recompute';
import { benchDataSource, progress } from './util';
import { median, round } from './figure';

export interface CaptureBenchOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Measured rounds; each round saves one form with every variant. */
  rounds: number;
  /** Children saved per transaction. @defaultValue 50 */
  children?: number;
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
}

type Variant = 'bare' | 'subscriber' | 'triggers';
const VARIANTS: readonly Variant[] = ['bare', 'subscriber', 'triggers'];

/**
 * The save path with each capture mode: one transaction saving `children` lines of a new order
 * (an admin form) with bare TypeORM, with the capture subscriber, and with trigger capture (the
 * triggers write the outbox inside the transaction; the coalescer listens and relays in the
 * background, as in production). Rounds interleave the variants, in a rotating order, so they
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
    };
  } finally {
    for (const c of [subscribed, triggered]) {
      await c.store.clear().catch(() => undefined);
      await c.close();
    }
    await ds.drop();
  }
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
