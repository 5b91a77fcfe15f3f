import { Redis } from 'ioredis';
import type { DataSource, EntityManager, EntitySubscriberInterface, InsertEvent } from 'typeorm';
import { Coalescer } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { recomputeOrders } from '../examples/shop/recompute';
import { type Figure, median, Samples } from './figure';
import { benchDataSource, dropNamespace, progress } from './util';

/** Sizes of the save benchmark. */
export interface SaveBenchOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Runs; each figure is a median over them. */
  runs: number;
  /** Forms saved per variant and run, interleaved form by form; a run's figure is their median. */
  formsPerRun: number;
  /** Lines per form. */
  children: number;
}

/** ms per form transaction of each variant, and their ratios. */
export interface SaveBenchResult {
  children: number;
  runs: number;
  formsPerRun: number;
  bareMs: Figure;
  oursMs: Figure;
  counterCacheMs: Figure;
  /** Ours / bare, run by run. */
  overheadRatio: Figure;
  /** Counter cache / ours, run by run. */
  speedupVsCounterCache: Figure;
}

/**
 * Rebuilds one order's total and line count the way a counter cache or hand-written code does
 * it, inside the child's transaction: read the aggregate of the order's lines, write the order.
 */
export async function counterCacheUpdate(manager: EntityManager, orderId: number): Promise<void> {
  const orders = manager.connection.getMetadata(Order).tablePath;
  const lines = manager.connection.getMetadata(OrderLine).tablePath;
  const [a] = (await manager.query(
    `SELECT coalesce(sum(qty * unit_price), 0) AS total, count(*)::int AS n
       FROM ${lines} WHERE order_id = $1 AND deleted_at IS NULL`,
    [orderId],
  )) as { total: string; n: number }[];
  await manager.query(`UPDATE ${orders} SET total = $2, line_count = $3 WHERE id = $1`, [orderId, a?.total ?? 0, a?.n ?? 0]);
}

/**
 * The pattern this product replaces: per child inserted, a SELECT of the order's aggregate and an
 * UPDATE of the order, in the child's transaction (N+1 for a form of N lines). TypeORM calls
 * afterInsert for a batch all at once; the updates are chained so the transaction's one
 * connection runs them one after another, as it must.
 */
class CounterCacheSubscriber implements EntitySubscriberInterface<OrderLine> {
  private chain: Promise<void> = Promise.resolve();
  listenTo(): typeof OrderLine {
    return OrderLine;
  }
  afterInsert(event: InsertEvent<OrderLine>): Promise<void> {
    this.chain = this.chain.catch(() => undefined).then(() => counterCacheUpdate(event.manager, event.entity.orderId));
    return this.chain;
  }
}

type Variant = 'bare' | 'ours' | 'counterCache';
const VARIANTS: readonly Variant[] = ['bare', 'ours', 'counterCache'];

/**
 * ms per transaction saving `children` lines of one order (an admin form): bare TypeORM, with
 * the coalescer's subscriber, and with the counter-cache pattern per child. The three are
 * interleaved form by form so they share the machine's weather; each run's figure is the median
 * of its forms, and each reported figure the median over the runs, with min and max.
 */
export async function benchSave(o: SaveBenchOptions): Promise<SaveBenchResult> {
  const ds: DataSource & { drop(): Promise<void> } = await benchDataSource(o.databaseUrl, `bench_save_${process.pid}`);
  const namespace = `bench-save-${process.pid}`;
  const coalescer = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  coalescer.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  const counterCache = new CounterCacheSubscriber();
  const raw = new Redis(o.redisUrl);
  try {
    // Each form saves the lines of a new order, so every variant's order has the same lines
    // (a counter cache over one ever-growing order would overstate its cost).
    const orders = ds.getRepository(Order);
    const form = async (): Promise<number> => {
      const order = await orders.save({ customer: 'bench' });
      const t = performance.now();
      await ds.transaction(async (m) => {
        await m.save(
          Array.from({ length: o.children }, (_, i) =>
            m.create(OrderLine, { orderId: order.id, sku: `b${i}`, qty: 1 + (i % 5), unitPrice: '9.99' }),
          ),
        );
      });
      return performance.now() - t;
    };
    const set = async (variant: Variant): Promise<void> => {
      coalescer.detach();
      const i = ds.subscribers.indexOf(counterCache);
      if (i >= 0) ds.subscribers.splice(i, 1);
      if (variant === 'ours') await coalescer.attach();
      if (variant === 'counterCache') ds.subscribers.push(counterCache);
    };
    // Warm up every path (JIT, pool, prepared plans) before measuring.
    for (const v of VARIANTS) {
      await set(v);
      for (let i = 0; i < 10; i += 1) await form();
    }
    const samples = new Samples();
    for (let run = 1; run <= o.runs; run += 1) {
      progress(`save: run ${run}/${o.runs}, ${o.formsPerRun} forms per variant`);
      const times: Record<Variant, number[]> = { bare: [], ours: [], counterCache: [] };
      for (let f = 0; f < o.formsPerRun; f += 1) {
        for (const v of VARIANTS) {
          await set(v);
          times[v].push(await form());
        }
      }
      const m = { bare: median(times.bare), ours: median(times.ours), counterCache: median(times.counterCache) };
      for (const v of VARIANTS) samples.add(v, m[v]);
      samples.add('overhead', m.ours / m.bare);
      samples.add('speedup', m.counterCache / m.ours);
    }
    await set('bare');
    await coalescer.flushed();
    return {
      children: o.children,
      runs: o.runs,
      formsPerRun: o.formsPerRun,
      bareMs: samples.figure('bare', 3),
      oursMs: samples.figure('ours', 3),
      counterCacheMs: samples.figure('counterCache', 3),
      overheadRatio: samples.figure('overhead', 3),
      speedupVsCounterCache: samples.figure('speedup', 2),
    };
  } finally {
    await coalescer.close();
    await dropNamespace(raw, namespace);
    raw.disconnect();
    await ds.drop();
  }
}
