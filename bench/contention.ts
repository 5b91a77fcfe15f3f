import { Redis } from 'ioredis';
import type { EntityManager, QueryRunner } from 'typeorm';
import { Coalescer } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { countMismatches, recomputeOrders } from '../examples/shop/recompute';
import { type Figure, quantile, Samples } from './figure';
import { benchDataSource, clearNamespace, dropNamespace, progress } from './util';
import { seededRandom } from './workload';

/** How the writers' saves keep the orders' totals. */
export type ContentionVariant = 'bare' | 'sync' | 'ours';
const VARIANTS: readonly ContentionVariant[] = ['bare', 'sync', 'ours'];

/** Sizes of the contention benchmark. */
export interface ContentionOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Writer counts; each writer holds a connection of its own. */
  writers: readonly number[];
  /** Hot parent counts: every save adds a line to one of them. */
  hotParents: readonly number[];
  /** How long the writers save in each run. */
  durationMs: number;
  rounds: number;
  /** `lock_timeout` of the writers' connections: a save waiting longer for a lock fails (55P03). */
  lockTimeoutMs: number;
  seed: number;
}

/** One variant at one writer count and hot parent count, over the rounds. */
export interface ContentionRow {
  writers: number;
  hotParents: number;
  variant: ContentionVariant;
  /** Saves committed per second. */
  savesPerSec: Figure;
  /** Latency of each save attempt (its whole transaction, failed ones included). */
  p50Ms: Figure;
  p99Ms: Figure;
  /** Errors over all rounds: deadlocks (40P01), lock timeouts (55P03), cancelled statements (57014), others. */
  deadlocks: number;
  lockTimeouts: number;
  cancelled: number;
  otherErrors: number;
  /** Orders whose total or line count disagree with their lines at the end, over all rounds; null for bare (it keeps nothing). */
  mismatches: number | null;
  /** Recomputes per run: ours counts the drains' (during the run and the last one); null for the others. */
  recomputes: Figure | null;
}

/** Ours against the others at one writer count and hot parent count, run by run. */
export interface ContentionComparison {
  writers: number;
  hotParents: number;
  /** Ours' saves/s over the synchronous pattern's. */
  savesOverSync: Figure;
  /** Ours' p99 latency over bare saves'. */
  p99OverBare: Figure;
}

/** Every row and comparison; `failures` lists every run of ours that left a mismatch. */
export interface ContentionResult {
  durationMs: number;
  rounds: number;
  rows: ContentionRow[];
  comparisons: ContentionComparison[];
  failures: string[];
}

interface RunStats {
  saves: number;
  ms: number;
  latencies: number[];
  errors: Record<'deadlocks' | 'lockTimeouts' | 'cancelled' | 'otherErrors', number>;
  mismatches: number;
  recomputes: number;
}

/** The PostgreSQL error code of a failed save, if it has one. */
function errorCode(error: unknown): string | undefined {
  const e = error as { code?: unknown; driverError?: { code?: unknown } };
  const code = e.code ?? e.driverError?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The synchronous pattern: the order rebuilt from its lines in the line's own transaction, one
 * statement, as counter caches and most hand-written code do.
 */
async function syncUpdate(manager: EntityManager, orderId: number): Promise<void> {
  const orders = manager.connection.getMetadata(Order).tablePath;
  const lines = manager.connection.getMetadata(OrderLine).tablePath;
  await manager.query(
    `UPDATE ${orders}
        SET total = (SELECT coalesce(sum(qty * unit_price), 0) FROM ${lines} WHERE order_id = $1 AND deleted_at IS NULL),
            line_count = (SELECT count(*) FROM ${lines} WHERE order_id = $1 AND deleted_at IS NULL)
      WHERE id = $1`,
    [orderId],
  );
}

/**
 * K writers, each on a connection of its own, insert lines of a few hot orders for a fixed
 * time: bare saves, the synchronous pattern (the order rebuilt in each line's transaction), and
 * ours (the subscriber marks, a runner drains every second meanwhile, a last drain at the end).
 * The three are interleaved, their order rotating round by round, each run on fresh orders.
 */
export async function benchContention(o: ContentionOptions): Promise<ContentionResult> {
  const maxWriters = Math.max(...o.writers);
  // Room for the runner's recomputes and the outbox relay beside the writers.
  const ds = await benchDataSource(o.databaseUrl, `bench_contention_${process.pid}`, maxWriters + 6);
  const namespace = `bench-contention-${process.pid}`;
  const raw = new Redis(o.redisUrl);
  const coalescer = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  coalescer.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  let recomputes = 0;
  coalescer.on('recomputed', () => {
    recomputes += 1;
  });
  const runners: QueryRunner[] = [];
  const failures: string[] = [];

  const runOnce = async (
    variant: ContentionVariant,
    writers: number,
    hot: number,
    durationMs: number,
    seed: number,
  ): Promise<RunStats> => {
    await clearNamespace(raw, namespace);
    const orderIds = (
      (await ds.query(`INSERT INTO shop_order (customer) SELECT 'hot' || g FROM generate_series(1, $1) g RETURNING id`, [
        hot,
      ])) as { id: number }[]
    ).map((r) => r.id);
    coalescer.detach();
    recomputes = 0;
    const runner = variant === 'ours' ? coalescer.runner({ schedule: '* * * * * *' }) : undefined;
    if (variant === 'ours') await coalescer.attach();
    runner?.start();
    const latencies: number[] = [];
    const errors = { deadlocks: 0, lockTimeouts: 0, cancelled: 0, otherErrors: 0 };
    let saves = 0;
    const started = performance.now();
    const deadline = started + durationMs;
    await Promise.all(
      runners.slice(0, writers).map(async (qr, w) => {
        const random = seededRandom(seed + w);
        for (let i = 0; performance.now() < deadline; i += 1) {
          const orderId = orderIds[Math.floor(random() * hot)] as number;
          const t = performance.now();
          try {
            await qr.manager.transaction(async (m) => {
              await m.save(m.create(OrderLine, { orderId, sku: `w${w}-${i}`, qty: 1 + (i % 5), unitPrice: '3.25' }));
              if (variant === 'sync') await syncUpdate(m, orderId);
            });
            saves += 1;
          } catch (error) {
            const code = errorCode(error);
            if (code === '40P01') errors.deadlocks += 1;
            else if (code === '55P03') errors.lockTimeouts += 1;
            else if (code === '57014') errors.cancelled += 1;
            else errors.otherErrors += 1;
          }
          latencies.push(performance.now() - t);
        }
      }),
    );
    const ms = performance.now() - started;
    if (runner) {
      await coalescer.flushed();
      await runner.stop();
      await coalescer.drain({ concurrency: 4 });
      coalescer.detach();
    }
    const mismatches = variant === 'bare' ? 0 : await countMismatches(ds.manager, orderIds);
    return { saves, ms, latencies, errors, mismatches, recomputes };
  };

  const samples = new Samples();
  const totals = new Map<string, Omit<RunStats, 'saves' | 'ms' | 'latencies' | 'recomputes'>>();
  try {
    for (let i = 0; i < maxWriters; i += 1) {
      const qr = ds.createQueryRunner();
      await qr.connect();
      // Set for every variant alike; only a save that waits on a lock can meet it.
      await qr.query(`SET lock_timeout = '${Math.round(o.lockTimeoutMs)}ms'`);
      runners.push(qr);
    }
    // Warm up every variant (JIT, prepared plans, the subscriber, the runner) before measuring.
    for (const v of VARIANTS) await runOnce(v, Math.min(...o.writers), 1, 300, o.seed);
    for (let round = 1; round <= o.rounds; round += 1) {
      for (const writers of o.writers) {
        for (const hot of o.hotParents) {
          progress(`contention: round ${round}/${o.rounds}, ${writers} writers on ${hot} hot parent(s)`);
          const order = [...VARIANTS.slice(round % 3), ...VARIANTS.slice(0, round % 3)];
          const stats = new Map<ContentionVariant, RunStats>();
          for (const variant of order) {
            const s = await runOnce(variant, writers, hot, o.durationMs, o.seed + round * 1000);
            stats.set(variant, s);
            const key = `${writers}/${hot}/${variant}`;
            samples.add(`${key}/rate`, (s.saves / s.ms) * 1000);
            samples.add(`${key}/p50`, quantile(s.latencies, 0.5));
            samples.add(`${key}/p99`, quantile(s.latencies, 0.99));
            samples.add(`${key}/recomputes`, s.recomputes);
            const t = totals.get(key) ?? {
              errors: { deadlocks: 0, lockTimeouts: 0, cancelled: 0, otherErrors: 0 },
              mismatches: 0,
            };
            for (const k of Object.keys(t.errors) as (keyof RunStats['errors'])[]) t.errors[k] += s.errors[k];
            t.mismatches += s.mismatches;
            totals.set(key, t);
            if (variant === 'ours' && s.mismatches !== 0) {
              failures.push(`contention: ours left ${s.mismatches} mismatches (${writers} writers, ${hot} hot, round ${round})`);
            }
          }
          const ours = stats.get('ours') as RunStats;
          const sync = stats.get('sync') as RunStats;
          const bare = stats.get('bare') as RunStats;
          samples.add(`${writers}/${hot}/savesOverSync`, ours.saves / ours.ms / (sync.saves / sync.ms));
          samples.add(`${writers}/${hot}/p99OverBare`, quantile(ours.latencies, 0.99) / quantile(bare.latencies, 0.99));
        }
      }
    }
  } finally {
    for (const qr of runners) await qr.release();
    await coalescer.close();
    await dropNamespace(raw, namespace).catch(() => undefined);
    raw.disconnect();
    await ds.drop();
  }
  const rows: ContentionRow[] = [];
  const comparisons: ContentionComparison[] = [];
  for (const writers of o.writers) {
    for (const hotParents of o.hotParents) {
      for (const variant of VARIANTS) {
        const key = `${writers}/${hotParents}/${variant}`;
        const t = totals.get(key);
        rows.push({
          writers,
          hotParents,
          variant,
          savesPerSec: samples.figure(`${key}/rate`),
          p50Ms: samples.figure(`${key}/p50`, 2),
          p99Ms: samples.figure(`${key}/p99`, 2),
          deadlocks: t?.errors.deadlocks ?? 0,
          lockTimeouts: t?.errors.lockTimeouts ?? 0,
          cancelled: t?.errors.cancelled ?? 0,
          otherErrors: t?.errors.otherErrors ?? 0,
          mismatches: variant === 'bare' ? null : (t?.mismatches ?? 0),
          recomputes: variant === 'ours' ? samples.figure(`${key}/recomputes`) : null,
        });
      }
      comparisons.push({
        writers,
        hotParents,
        savesOverSync: samples.figure(`${writers}/${hotParents}/savesOverSync`, 2),
        p99OverBare: samples.figure(`${writers}/${hotParents}/p99OverBare`, 2),
      });
    }
  }
  return { durationMs: o.durationMs, rounds: o.rounds, rows, comparisons, failures };
}
