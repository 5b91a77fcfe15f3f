import { Forked } from './forked';
import { Redis } from 'ioredis';
import type { EntityManager, QueryRunner } from 'typeorm';
import { Coalescer, RUNNER_DEFAULTS, type Runner } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { countMismatches, recomputeOrders } from '../examples/shop/recompute';
import { type Figure, quantile, Samples } from './figure';
import { benchDataSource, clearNamespace, dropNamespace, progress } from './util';
import { seededRandom } from './workload';
import type { RunnerReply, RunnerRequest } from './contention-runner';

/**
 * How the writers' saves keep the orders' totals. `ours`: the subscriber marks, a runner drains
 * in the writers' process; `ours-forked`: the same marks, the runner in a process of its own.
 * `triggers`: row triggers capture, the relay and the runner in the writers' process;
 * `triggers-forked`: the relay and the runner in a process of its own.
 */
export type ContentionVariant = 'bare' | 'sync' | 'ours' | 'ours-forked' | 'triggers' | 'triggers-forked';
const VARIANTS: readonly ContentionVariant[] = ['bare', 'sync', 'ours', 'ours-forked', 'triggers', 'triggers-forked'];
/** The variants that capture and recompute: each compared with bare. */
export type CapturingVariant = Exclude<ContentionVariant, 'bare' | 'sync'>;
export const CAPTURING: readonly CapturingVariant[] = ['ours', 'ours-forked', 'triggers', 'triggers-forked'];
const capturing = (v: ContentionVariant): v is CapturingVariant => (CAPTURING as readonly string[]).includes(v);
/** Every runner's schedule, in the writers' process or forked: the default, a tick a second (as every other runner option). */
const RUNNER_SCHEDULE = RUNNER_DEFAULTS.schedule;

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
  /**
   * Recomputes per run of the capturing variants: the drains' (the runner's during the run and
   * the last one), in whichever process they ran; null for the others.
   */
  recomputes: Figure | null;
}

/** One capturing variant over bare at one writer count and hot parent count, run by run. */
export interface OverBare {
  variant: CapturingVariant;
  savesPerSec: Figure;
  p99Ms: Figure;
}

/** Ours against the others at one writer count and hot parent count, run by run. */
export interface ContentionComparison {
  writers: number;
  hotParents: number;
  /** Ours' saves/s over the synchronous pattern's. */
  savesOverSync: Figure;
  /** Ours' p99 latency over bare saves'. */
  p99OverBare: Figure;
  /** Every capturing variant's saves/s and p99 over bare's. */
  overBare: OverBare[];
}

/** Every row and comparison; `failures` lists every run of a capturing variant that left a mismatch. */
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

/** A runner process of bench/contention-runner.ts, reused across runs: one per capture mode. */
class RunnerProcess {
  private constructor(private readonly process: Forked<RunnerRequest, RunnerReply>) {}

  static async start(env: Record<string, string>): Promise<RunnerProcess> {
    return new RunnerProcess(await Forked.start('contention-runner.js', 'contention runner', env));
  }

  /** Makes a coalescer and starts its runner; resolves once it runs. */
  async begin(): Promise<void> {
    await this.process.request({ start: true });
  }

  /** Stops the runner, drains what is left; resolves with the recomputes of the run. */
  async end(): Promise<number> {
    const reply = await this.process.request({ stop: true });
    if (!('stopped' in reply)) throw new Error('bench contention runner answered a stop without its counts');
    return reply.stopped.recomputes;
  }

  /** Asks the process to exit; kills it if it has not within 10 s. */
  stop(): Promise<void> {
    return this.process.stop({ exit: true }, 10_000);
  }
}

/**
 * K writers, each on a connection of its own, insert lines of a few hot orders for a fixed
 * time: bare saves, the synchronous pattern (the order rebuilt in each line's transaction), and
 * the capturing variants, each with a runner draining every second meanwhile and a last drain at
 * the end: ours (the subscriber marks, the runner in the writers' process), ours-forked (the
 * runner in a process of its own), triggers (the library's row triggers capture; the relay and
 * the runner in the writers' process) and triggers-forked (the relay and the runner in a process
 * of its own). The triggers are installed once and enabled only for the trigger variants. The
 * variants are interleaved, their order rotating round by round, each run on fresh orders.
 */
export async function benchContention(o: ContentionOptions): Promise<ContentionResult> {
  const maxWriters = Math.max(...o.writers);
  const schema = `bench_contention_${process.pid}`;
  // Room for the runner's recomputes and the outbox relay beside the writers.
  const ds = await benchDataSource(o.databaseUrl, schema, maxWriters + 6);
  const namespace = `bench-contention-${process.pid}`;
  const triggerNamespace = `bench-contention-triggers-${process.pid}`;
  const raw = new Redis(o.redisUrl);
  const coalescer = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  coalescer.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  let recomputes = 0;
  coalescer.on('recomputed', () => {
    recomputes += 1;
  });
  /**
   * The trigger variants' coalescer in this process, made for each run and closed after it, as
   * close() is what ends its relay: none polls while the other variants run.
   */
  const triggered = (): Coalescer => {
    const c = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace: triggerNamespace });
    c.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture: 'triggers' });
    c.on('recomputed', () => {
      recomputes += 1;
    });
    return c;
  };
  const lines = ds.getMetadata(OrderLine).tablePath;
  let triggersOn = true;
  const setTriggers = async (on: boolean): Promise<void> => {
    if (on === triggersOn) return;
    await ds.query(`ALTER TABLE ${lines} ${on ? 'ENABLE' : 'DISABLE'} TRIGGER USER`);
    triggersOn = on;
  };
  const runners: QueryRunner[] = [];
  const forked: Partial<Record<'ours-forked' | 'triggers-forked', RunnerProcess>> = {};
  const failures: string[] = [];

  const runOnce = async (
    variant: ContentionVariant,
    writers: number,
    hot: number,
    durationMs: number,
    seed: number,
  ): Promise<RunStats> => {
    const trigger = variant === 'triggers' || variant === 'triggers-forked';
    await clearNamespace(raw, trigger ? triggerNamespace : namespace);
    if (trigger) await ds.query(`DELETE FROM coalesce_outbox WHERE namespace = $1`, [triggerNamespace]);
    await setTriggers(trigger);
    const orderIds = (
      (await ds.query(`INSERT INTO shop_order (customer) SELECT 'hot' || g FROM generate_series(1, $1) g RETURNING id`, [
        hot,
      ])) as { id: number }[]
    ).map((r) => r.id);
    coalescer.detach();
    recomputes = 0;
    // Where this run's capture and drains happen: this process, or the forked runner.
    const local: Coalescer | undefined = variant === 'ours' ? coalescer : variant === 'triggers' ? triggered() : undefined;
    const remote = variant === 'ours-forked' || variant === 'triggers-forked' ? forked[variant] : undefined;
    if (variant === 'ours' || variant === 'ours-forked') await coalescer.attach();
    if (local && local !== coalescer) await local.attach();
    const runner: Runner | undefined = local?.runner({ schedule: RUNNER_SCHEDULE });
    runner?.start();
    await remote?.begin();
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
    // The subscriber's marks still on their way to Redis belong to this run.
    if (variant === 'ours' || variant === 'ours-forked') await coalescer.flushed();
    if (local && runner) {
      await runner.stop();
      await local.drain({ concurrency: 4 });
      if (local === coalescer) coalescer.detach();
      else await local.close();
    }
    if (remote) recomputes += await remote.end();
    coalescer.detach();
    const mismatches = variant === 'bare' ? 0 : await countMismatches(ds.manager, orderIds);
    return { saves, ms, latencies, errors, mismatches, recomputes };
  };

  const samples = new Samples();
  const totals = new Map<string, Omit<RunStats, 'saves' | 'ms' | 'latencies' | 'recomputes'>>();
  try {
    // The library's triggers on the lines, for the trigger namespace, installed once.
    const installer = triggered();
    for (const sql of installer.triggerStatements().up) await ds.query(sql);
    await installer.close();
    await setTriggers(false);
    const env = { DATABASE_URL: o.databaseUrl, REDIS_URL: o.redisUrl, BENCH_SCHEMA: schema, BENCH_SCHEDULE: RUNNER_SCHEDULE };
    forked['ours-forked'] = await RunnerProcess.start({ ...env, BENCH_NAMESPACE: namespace, BENCH_CAPTURE: 'subscriber' });
    forked['triggers-forked'] = await RunnerProcess.start({
      ...env,
      BENCH_NAMESPACE: triggerNamespace,
      BENCH_CAPTURE: 'triggers',
    });
    for (let i = 0; i < maxWriters; i += 1) {
      const qr = ds.createQueryRunner();
      await qr.connect();
      // Set for every variant alike; only a save that waits on a lock can meet it.
      await qr.query(`SET lock_timeout = '${Math.round(o.lockTimeoutMs)}ms'`);
      runners.push(qr);
    }
    // Warm up every variant (JIT, prepared plans, the subscriber, the triggers, the runners) before measuring.
    for (const v of VARIANTS) await runOnce(v, Math.min(...o.writers), 1, 300, o.seed);
    for (let round = 1; round <= o.rounds; round += 1) {
      for (const writers of o.writers) {
        for (const hot of o.hotParents) {
          progress(`contention: round ${round}/${o.rounds}, ${writers} writers on ${hot} hot parent(s)`);
          const shift = round % VARIANTS.length;
          const order = [...VARIANTS.slice(shift), ...VARIANTS.slice(0, shift)];
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
            if (capturing(variant) && s.mismatches !== 0) {
              failures.push(
                `contention: ${variant} left ${s.mismatches} mismatches (${writers} writers, ${hot} hot, round ${round})`,
              );
            }
          }
          const ours = stats.get('ours') as RunStats;
          const sync = stats.get('sync') as RunStats;
          const bare = stats.get('bare') as RunStats;
          samples.add(`${writers}/${hot}/savesOverSync`, ours.saves / ours.ms / (sync.saves / sync.ms));
          samples.add(`${writers}/${hot}/p99OverBare`, quantile(ours.latencies, 0.99) / quantile(bare.latencies, 0.99));
          for (const v of CAPTURING) {
            const s = stats.get(v) as RunStats;
            samples.add(`${writers}/${hot}/${v}/ratePerBare`, s.saves / s.ms / (bare.saves / bare.ms));
            samples.add(`${writers}/${hot}/${v}/p99PerBare`, quantile(s.latencies, 0.99) / quantile(bare.latencies, 0.99));
          }
        }
      }
    }
  } finally {
    for (const qr of runners) await qr.release();
    await Promise.all(Object.values(forked).map((p) => p.stop()));
    await coalescer.close();
    await dropNamespace(raw, namespace).catch(() => undefined);
    await dropNamespace(raw, triggerNamespace).catch(() => undefined);
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
          recomputes: capturing(variant) ? samples.figure(`${key}/recomputes`) : null,
        });
      }
      comparisons.push({
        writers,
        hotParents,
        savesOverSync: samples.figure(`${writers}/${hotParents}/savesOverSync`, 2),
        p99OverBare: samples.figure(`${writers}/${hotParents}/p99OverBare`, 2),
        overBare: CAPTURING.map((variant) => ({
          variant,
          savesPerSec: samples.figure(`${writers}/${hotParents}/${variant}/ratePerBare`, 2),
          p99Ms: samples.figure(`${writers}/${hotParents}/${variant}/p99PerBare`, 2),
        })),
      });
    }
  }
  return { durationMs: o.durationMs, rounds: o.rounds, rows, comparisons, failures };
}
