import { Redis } from 'ioredis';
import { Coalescer } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { countMismatches, recomputeOrders } from '../examples/shop/recompute';
import { type Figure, Samples } from './figure';
import { benchDataSource, clearNamespace, dropNamespace, progress } from './util';

/** Sizes of the end-to-end run. */
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
  runs: number;
}

/** Figures of the end-to-end runs; `failures` lists every run with mismatches or extra recomputes. */
export interface EndToEndResult {
  saves: number;
  runs: number;
  savesPerSec: Figure;
  distinctOrders: number;
  recompute: { parentsPerSec: Figure; recomputes: Figure };
  recomputeMany: { parentsPerSec: Figure; recomputes: Figure; batchSize: number };
  /** recomputeMany / recompute, run by run. */
  manyOverOne: Figure;
  mismatches: number;
  failures: string[];
}

/**
 * The shop end to end, `runs` times on fresh orders: child saves through TypeORM with the
 * subscriber attached, spread over the orders as admin forms; then the pending orders drained
 * with the real SQL recompute, one by one and then (the same orders marked again) with
 * recomputeMany.
 */
export async function benchEndToEnd(o: EndToEndOptions): Promise<EndToEndResult> {
  const ds = await benchDataSource(o.databaseUrl, `bench_e2e_${process.pid}`, o.writers + 4);
  const namespace = `bench-e2e-${process.pid}`;
  const raw = new Redis(o.redisUrl);
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
  const samples = new Samples();
  const failures: string[] = [];
  let distinctOrders = 0;
  let mismatches = 0;
  let saves = 0;
  try {
    for (let run = 1; run <= o.runs; run += 1) {
      await clearNamespace(raw, namespace);
      const orderIds = (
        (await ds.query(`INSERT INTO shop_order (customer) SELECT 'c' || g FROM generate_series(1, $1) g RETURNING id`, [
          o.orders,
        ])) as { id: number }[]
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
          if (f % 2000 === 0) progress(`end to end: run ${run}/${o.runs}, ${saved}/${o.saves} child saves`);
        }
      };
      await Promise.all(Array.from({ length: o.writers }, writer));
      await one.flushed();
      const saveMs = performance.now() - t0;
      one.detach();

      recomputes = 0;
      let t = performance.now();
      await one.drain({ concurrency: o.concurrency });
      const oneMs = performance.now() - t;
      const oneRecomputes = recomputes;
      const afterOne = await countMismatches(ds.manager, orderIds);

      await many.mark(Order, [...touched]);
      recomputes = 0;
      t = performance.now();
      await many.drain({ concurrency: o.concurrency });
      const manyMs = performance.now() - t;
      const manyRecomputes = recomputes;
      const afterMany = await countMismatches(ds.manager, orderIds);

      saves = saved;
      distinctOrders = touched.size;
      mismatches += afterOne + afterMany;
      if (afterOne + afterMany !== 0) failures.push(`end to end: ${afterOne + afterMany} mismatches in run ${run}`);
      if (oneRecomputes !== touched.size || manyRecomputes !== touched.size) {
        failures.push(
          `end to end: ${oneRecomputes} / ${manyRecomputes} recomputes for ${touched.size} orders touched in run ${run}`,
        );
      }
      const oneRate = (oneRecomputes / oneMs) * 1000;
      const manyRate = (manyRecomputes / manyMs) * 1000;
      samples.add('saves', (saved / saveMs) * 1000);
      samples.add('one', oneRate);
      samples.add('oneCount', oneRecomputes);
      samples.add('many', manyRate);
      samples.add('manyCount', manyRecomputes);
      samples.add('manyOverOne', manyRate / oneRate);
    }
    return {
      saves,
      runs: o.runs,
      savesPerSec: samples.figure('saves'),
      distinctOrders,
      recompute: { parentsPerSec: samples.figure('one'), recomputes: samples.figure('oneCount') },
      recomputeMany: { parentsPerSec: samples.figure('many'), recomputes: samples.figure('manyCount'), batchSize: 100 },
      manyOverOne: samples.figure('manyOverOne', 2),
      mismatches,
      failures,
    };
  } finally {
    await one.close();
    await many.close();
    await dropNamespace(raw, namespace).catch(() => undefined);
    raw.disconnect();
    await ds.drop();
  }
}
