import { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import { Coalescer, count, sum } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { countMismatches, recomputeOrders } from '../examples/shop/recompute';
import { type Figure, Samples } from './figure';
import { benchDataSource, clearNamespace, dropNamespace, progress } from './util';
import { batches } from './workload';

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
  /**
   * The same orders with their derived columns declared as aggregates: marked again and drained
   * (recomputeMany of the aggregates, in batches of the library's `batchSize`), against the
   * aggregates' own UPDATE run alone on the same orders in the same batches (no Redis, no drain),
   * at the same concurrency. `ratio` is throughDrain / sqlAlone, run by run.
   */
  declarative: {
    throughDrainPerSec: Figure;
    sqlAlonePerSec: Figure;
    ratio: Figure;
    recomputes: Figure;
    batchSize: number;
  };
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
  const declared = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  declared.parent<number>(Order, { aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) } });
  declared.on('recomputed', () => {
    recomputes += 1;
  });
  const declaredType = declared.registry.parentOf(Order);
  const aggregates = declaredType.aggregates;
  if (!aggregates) throw new Error('end to end: the declared aggregates did not compile');
  const samples = new Samples();
  const failures: string[] = [];
  let distinctOrders = 0;
  let mismatches = 0;
  let saves = 0;
  try {
    // The declarative coalescer's first drain (scripts, the namespace's epoch) is not a run's.
    await declared.drain();
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

      // The declarative aggregates: the UPDATE they run, rendered by the library for each batch
      // (updateStatement), executed alone; and the same orders marked again and drained. One
      // untimed pass first, so both find the same plans and pages warm; which goes first
      // alternates run by run.
      const statements = batches(
        [...touched].sort((a, b) => a - b),
        declaredType.batchSize,
      ).map((batch) => aggregates.updateStatement(batch));
      await sqlAlone(ds, statements, o.concurrency);
      let declaredMs = 0;
      let sqlMs = 0;
      let declaredRecomputes = 0;
      for (const side of run % 2 === 1 ? (['drain', 'sql'] as const) : (['sql', 'drain'] as const)) {
        if (side === 'sql') {
          sqlMs = await sqlAlone(ds, statements, o.concurrency);
          continue;
        }
        await declared.mark(Order, [...touched]);
        recomputes = 0;
        t = performance.now();
        await declared.drain({ concurrency: o.concurrency });
        declaredMs = performance.now() - t;
        declaredRecomputes = recomputes;
      }
      const afterDeclared = await countMismatches(ds.manager, orderIds);

      saves = saved;
      distinctOrders = touched.size;
      mismatches += afterOne + afterMany + afterDeclared;
      if (afterOne + afterMany + afterDeclared !== 0) {
        failures.push(`end to end: ${afterOne + afterMany + afterDeclared} mismatches in run ${run}`);
      }
      if (oneRecomputes !== touched.size || manyRecomputes !== touched.size || declaredRecomputes !== touched.size) {
        failures.push(
          `end to end: ${oneRecomputes} / ${manyRecomputes} / ${declaredRecomputes} (declarative) recomputes for ${touched.size} orders touched in run ${run}`,
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
      const throughDrain = (declaredRecomputes / declaredMs) * 1000;
      const alone = (touched.size / sqlMs) * 1000;
      samples.add('declared', throughDrain);
      samples.add('declaredCount', declaredRecomputes);
      samples.add('sqlAlone', alone);
      samples.add('declaredRatio', throughDrain / alone);
    }
    return {
      saves,
      runs: o.runs,
      savesPerSec: samples.figure('saves'),
      distinctOrders,
      recompute: { parentsPerSec: samples.figure('one'), recomputes: samples.figure('oneCount') },
      recomputeMany: { parentsPerSec: samples.figure('many'), recomputes: samples.figure('manyCount'), batchSize: 100 },
      manyOverOne: samples.figure('manyOverOne', 2),
      declarative: {
        throughDrainPerSec: samples.figure('declared'),
        sqlAlonePerSec: samples.figure('sqlAlone'),
        ratio: samples.figure('declaredRatio', 2),
        recomputes: samples.figure('declaredCount'),
        batchSize: declaredType.batchSize,
      },
      mismatches,
      failures,
    };
  } finally {
    await one.close();
    await many.close();
    await declared.close();
    await dropNamespace(raw, namespace).catch(() => undefined);
    raw.disconnect();
    await ds.drop();
  }
}

/**
 * Runs `statements` (one per batch) on `concurrency` connections at once, as the drain runs
 * recomputeMany, each in autocommit as the aggregates' recomputeMany does; returns the ms.
 */
async function sqlAlone(
  ds: DataSource,
  statements: readonly { sql: string; params: unknown[] }[],
  concurrency: number,
): Promise<number> {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < statements.length; i = next++) {
        const { sql, params } = statements[i] as { sql: string; params: unknown[] };
        await ds.query(sql, params);
      }
    }),
  );
  return performance.now() - t;
}
