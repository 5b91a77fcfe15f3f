import type { DataSource, EntitySubscriberInterface, InsertEvent } from 'typeorm';
import { Coalescer } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { recomputeOrders } from '../examples/shop/recompute';
import { benchDataSource, median, progress, round } from './util';

export interface SaveBenchOptions {
  databaseUrl: string;
  redisUrl: string;
  rounds: number;
  children: number;
}

export interface SaveBenchResult {
  children: number;
  rounds: number;
  bareMs: number;
  oursMs: number;
  nPlus1Ms: number;
  overheadRatio: number;
  speedupVsNPlus1: number;
}

/**
 * The pattern this product replaces: the parent recomputed inside every child's insert. TypeORM
 * calls afterInsert for a batch all at once; the recomputes are chained so the transaction's
 * one connection runs them one after another, as it must.
 */
class NPlusOneSubscriber implements EntitySubscriberInterface<OrderLine> {
  private chain: Promise<void> = Promise.resolve();
  listenTo(): typeof OrderLine {
    return OrderLine;
  }
  afterInsert(event: InsertEvent<OrderLine>): Promise<void> {
    this.chain = this.chain.then(() => recomputeOrders(event.manager, [event.entity.orderId]));
    return this.chain;
  }
}

/**
 * ms per transaction saving `children` lines of one order (an admin form), bare TypeORM, with
 * the coalescer's subscriber, and with an N+1 recompute per child; the three interleaved round
 * by round so they share the machine's weather; medians.
 */
export async function benchSave(o: SaveBenchOptions): Promise<SaveBenchResult> {
  const ds: DataSource & { drop(): Promise<void> } = await benchDataSource(o.databaseUrl, `bench_save_${process.pid}`);
  const coalescer = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace: `bench-save-${process.pid}` });
  coalescer.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  const nPlus1 = new NPlusOneSubscriber();
  try {
    // Each form saves the lines of a new order, so every variant's order has the same lines
    // (an N+1 recompute over one ever-growing order would overstate its cost).
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
    const set = async (variant: 'bare' | 'ours' | 'nPlus1'): Promise<void> => {
      coalescer.detach();
      const i = ds.subscribers.indexOf(nPlus1);
      if (i >= 0) ds.subscribers.splice(i, 1);
      if (variant === 'ours') await coalescer.attach();
      if (variant === 'nPlus1') ds.subscribers.push(nPlus1);
    };
    const times = { bare: [] as number[], ours: [] as number[], nPlus1: [] as number[] };
    // Warm up every path (JIT, pool, prepared plans) before measuring.
    for (const v of ['bare', 'ours', 'nPlus1'] as const) {
      await set(v);
      for (let i = 0; i < 10; i += 1) await form();
    }
    for (let r = 0; r < o.rounds; r += 1) {
      if (r % 50 === 0) progress(`save: round ${r + 1}/${o.rounds}`);
      for (const v of ['bare', 'ours', 'nPlus1'] as const) {
        await set(v);
        times[v].push(await form());
      }
    }
    await set('bare');
    const bareMs = median(times.bare);
    const oursMs = median(times.ours);
    const nPlus1Ms = median(times.nPlus1);
    return {
      children: o.children,
      rounds: o.rounds,
      bareMs: round(bareMs, 3),
      oursMs: round(oursMs, 3),
      nPlus1Ms: round(nPlus1Ms, 3),
      overheadRatio: round(oursMs / bareMs, 3),
      speedupVsNPlus1: round(nPlus1Ms / oursMs, 2),
    };
  } finally {
    await coalescer.store.clear();
    await coalescer.close();
    await ds.drop();
  }
}
