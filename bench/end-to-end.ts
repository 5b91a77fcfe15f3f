import { Coalescer } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { countMismatches, recomputeOrders } from '../examples/shop/recompute';
import { benchDataSource, progress, round } from './util';

export interface EndToEndOptions {
  databaseUrl: string;
  redisUrl: string;
  saves: number;
  orders: number;
  /** Lines per admin-form transaction. */
  perForm: number;
  /** Forms saved at once. */
  writers: number;
  concurrency: number;
}

export interface EndToEndResult {
  saves: number;
  savesPerSec: number;
  distinctOrders: number;
  recomputes: number;
  mismatches: number;
  recompute: { parentsPerSec: number; recomputes: number };
  recomputeMany: { parentsPerSec: number; recomputes: number; batchSize: number };
}

/**
 * The shop end to end: child saves through TypeORM with the subscriber attached, spread over
 * the orders as admin forms; then the pending orders drained with the real SQL recompute, one
 * by one and then (the same orders marked again) with recomputeMany.
 */
export async function benchEndToEnd(o: EndToEndOptions): Promise<EndToEndResult> {
  const ds = await benchDataSource(o.databaseUrl, `bench_e2e_${process.pid}`, o.writers + 4);
  const namespace = `bench-e2e-${process.pid}`;
  let recomputes = 0;
  const one = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  one.parent<number>(Order, {
    recompute: async (id, { manager }) => {
      recomputes += 1;
      await recomputeOrders(manager, [id]);
    },
  });
  one.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  const many = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  many.parent<number>(Order, {
    recomputeMany: async (ids, { manager }) => {
      recomputes += ids.length;
      await recomputeOrders(manager, ids);
    },
  });
  try {
    await one.store.clear();
    const orderIds = (
      (await ds.query(`INSERT INTO shop_order (customer) SELECT 'c' || g FROM generate_series(1, $1) g RETURNING id`, [
        o.orders,
      ])) as {
        id: number;
      }[]
    ).map((r) => r.id);
    await one.attach();
    const forms = Math.ceil(o.saves / o.perForm);
    const touched = new Set<number>();
    let next = 0;
    let saved = 0;
    const t0 = performance.now();
    const writer = async (): Promise<void> => {
      for (let f = next++; f < forms; f = next++) {
        // A deterministic spread: form f edits order (f * 7919) mod orders.
        const orderId = orderIds[(f * 7919) % orderIds.length] as number;
        touched.add(orderId);
        const n = Math.min(o.perForm, o.saves - f * o.perForm);
        await ds.transaction(async (m) => {
          await m.save(
            Array.from({ length: n }, (_, i) =>
              m.create(OrderLine, { orderId, sku: `e${f}-${i}`, qty: 1 + ((f + i) % 7), unitPrice: '4.50' }),
            ),
          );
        });
        saved += n;
        if (f % 2000 === 0) progress(`end to end: ${saved}/${o.saves} child saves`);
      }
    };
    await Promise.all(Array.from({ length: o.writers }, writer));
    await one.flushed();
    const saveMs = performance.now() - t0;
    one.detach();

    progress(`end to end: draining ${touched.size} orders with recompute (one by one)`);
    recomputes = 0;
    let t = performance.now();
    await one.drain({ concurrency: o.concurrency });
    const oneMs = performance.now() - t;
    const oneRecomputes = recomputes;
    const mismatches = await countMismatches(ds.manager);

    progress(`end to end: the same ${touched.size} orders with recomputeMany`);
    await many.mark(Order, [...touched]);
    recomputes = 0;
    t = performance.now();
    await many.drain({ concurrency: o.concurrency });
    const manyMs = performance.now() - t;
    const manyRecomputes = recomputes;
    const mismatchesAfter = await countMismatches(ds.manager);

    return {
      saves: saved,
      savesPerSec: round((saved / saveMs) * 1000),
      distinctOrders: touched.size,
      recomputes: oneRecomputes,
      mismatches: mismatches + mismatchesAfter,
      recompute: { parentsPerSec: round((oneRecomputes / oneMs) * 1000), recomputes: oneRecomputes },
      recomputeMany: { parentsPerSec: round((manyRecomputes / manyMs) * 1000), recomputes: manyRecomputes, batchSize: 100 },
    };
  } finally {
    await one.store.clear().catch(() => undefined);
    await one.close();
    await many.close();
    await ds.drop();
  }
}
