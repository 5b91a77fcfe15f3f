import { Redis } from 'ioredis';
import type { QueryRunner } from 'typeorm';
import { Coalescer, type RecomputedEvent, type Runner } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { countMismatches, recomputeOrders } from '../examples/shop/recompute';
import { type Figure, quantile, Samples } from './figure';
import { benchDataSource, clearNamespace, dropNamespace, progress, sleep } from './util';

/**
 * How the writers' saves keep the orders' totals: `bare` captures nothing; `minN` is a coalescer
 * with default options but `minIntervalMs: N`, and its runner with default options (a tick a
 * second), in the writers' process.
 */
export type HotSetting = 'bare' | 'min0' | 'min250' | 'min500' | 'min1000';
const SETTINGS: readonly HotSetting[] = ['bare', 'min0', 'min250', 'min500', 'min1000'];
type OursSetting = Exclude<HotSetting, 'bare'>;
const MIN_INTERVAL_MS: Readonly<Record<OursSetting, number>> = { min0: 0, min250: 250, min500: 500, min1000: 1_000 };
const ours = (s: HotSetting): s is OursSetting => s !== 'bare';

/** The quiet order gets a line this often, from a connection of its own. */
const QUIET_EVERY_MS = 250;
/** How often the hot order's staleness is sampled. */
const SAMPLE_EVERY_MS = 50;
/**
 * Longest the runner keeps going after the writers stop, for the last quiet saves to be
 * recomputed; a quiet save not recomputed by then counts as waiting until then (and is noted).
 */
const QUIET_TAIL_MS = 3_000;

/** Sizes of the hot parent benchmark. */
export interface HotParentOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Writers, each on a connection of its own, all inserting lines of the one hot order. */
  writers: number;
  /** How long the writers save in each run. */
  durationMs: number;
  rounds: number;
}

/** p50 / p99 / max of one run's samples, as figures over the rounds. */
export interface Spread {
  p50: Figure;
  p99: Figure;
}

/** One setting over the rounds; the figures of ours are null for bare. */
export interface HotParentRow {
  setting: HotSetting;
  /** Saves of the writers committed per second (the quiet order's not counted). */
  savesPerSec: Figure;
  /** Saves/s over bare's in the same round. */
  overBare: Figure | null;
  /** Recomputes of the hot order that ended while the writers saved, per second of the run. */
  hotRecomputesPerSec: Figure | null;
  /**
   * Age of the oldest save of the hot order not yet covered by a recompute (one that started
   * after its commit), sampled every 50 ms while the writers save; p50, p99 and max of each run.
   * The run's first save waits for the runner's next tick like any other, so the first second
   * counts. A run of fewer than 100 samples (4 s: 80) has its max as its p99 (nearest rank).
   */
  hotStalenessMs: (Spread & { max: Figure }) | null;
  /**
   * Each quiet save: its commit to the end of the first recompute of the quiet order started
   * after it; p50, p99 of each run (a save every 250 ms: the p99 of a run is its max).
   */
  quietLatencyMs: Spread | null;
  /** Quiet latency p99 over min0's in the same round (null for bare and min0). */
  quietP99OverMin0: Figure | null;
  /** Orders (hot and quiet) whose totals disagree with their lines after the last drain, over all rounds; null for bare. */
  mismatches: number | null;
  /** Saves that failed, over all rounds (none expected: the writers only insert). */
  errors: number;
}

export interface HotParentResult {
  writers: number;
  durationMs: number;
  rounds: number;
  rows: HotParentRow[];
  /** Runs out of the ordinary: a hot order never recomputed while the writers saved, quiet saves never recomputed, failed saves. */
  notes: string[];
  failures: string[];
}

/** One run's raw figures. */
interface RunStats {
  saves: number;
  ms: number;
  errors: number;
  hotRecomputes: number;
  staleness: number[];
  quietLatencies: number[];
  /** Quiet saves no recompute covered within QUIET_TAIL_MS after the writers stopped. */
  quietUncovered: number;
  mismatches: number;
}

/** A recompute of one order, in performance.now() time: it started at `start` (the event's end minus its duration), ended at `end`. */
interface Span {
  start: number;
  end: number;
}

/**
 * W writers insert lines of one hot order for a fixed time while a quiet order gets a line every
 * 250 ms from a connection of its own: bare saves, and ours with minIntervalMs 0, 250, 500 and
 * 1000 (a coalescer each, its own namespace, otherwise default options; a runner with default
 * options in the writers' process, a last drain() at the end). What the interval costs (the
 * writers' saves/s over bare) and buys (recomputes of the hot order per second), and what it
 * does to freshness (the hot order's staleness, the quiet order's latency). The settings are
 * interleaved, their order rotating round by round, each run on fresh orders and emptied tables.
 */
export async function benchHotParent(o: HotParentOptions): Promise<HotParentResult> {
  const schema = `bench_hot_${process.pid}`;
  // The writers, the quiet writer, and room for the runner's recomputes (concurrency 4) and the drains.
  const ds = await benchDataSource(o.databaseUrl, schema, o.writers + 8);
  const raw = new Redis(o.redisUrl);
  const orders = ds.getMetadata(Order).tablePath;
  const lines = ds.getMetadata(OrderLine).tablePath;
  /** What this run does with each recompute (every coalescer reports here). */
  let onRecomputed: ((e: RecomputedEvent) => void) | undefined;
  const coalescers = new Map<OursSetting, Coalescer>();
  for (const setting of SETTINGS) {
    if (!ours(setting)) continue;
    const c = new Coalescer({
      dataSource: ds,
      redis: o.redisUrl,
      namespace: `bench-hot-${process.pid}-${setting}`,
      minIntervalMs: MIN_INTERVAL_MS[setting],
    });
    c.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    c.on('recomputed', (e: RecomputedEvent) => onRecomputed?.(e));
    coalescers.set(setting, c);
  }
  const writers: QueryRunner[] = [];
  let quietWriter: QueryRunner | undefined;
  const notes: string[] = [];
  const failures: string[] = [];

  const runOnce = async (setting: HotSetting, durationMs: number, where: string, measure = true): Promise<RunStats> => {
    const coalescer = ours(setting) ? coalescers.get(setting) : undefined;
    for (const c of coalescers.values()) c.detach();
    if (coalescer) await clearNamespace(raw, coalescer.namespace);
    // Every run starts from the same empty tables: the recomputes' cost does not grow run by run.
    await ds.query(`TRUNCATE ${lines}, ${orders}`);
    const [hot, quiet] = (
      (await ds.query(`INSERT INTO ${orders} (customer) VALUES ('hot'), ('quiet') RETURNING id`)) as { id: number }[]
    ).map((r) => r.id) as [number, number];

    const hotSpans: Span[] = [];
    const quietSpans: Span[] = [];
    /** Recomputes of the hot order started by now cover every save committed before this. */
    let coveredUpTo = Number.NEGATIVE_INFINITY;
    onRecomputed = (e) => {
      const end = performance.now();
      const span = { start: end - e.durationMs, end };
      const id = Number(e.id);
      if (id === hot) {
        hotSpans.push(span);
        coveredUpTo = Math.max(coveredUpTo, span.start);
      } else if (id === quiet) quietSpans.push(span);
    };
    let runner: Runner | undefined;
    if (coalescer) {
      await coalescer.attach();
      runner = coalescer.runner();
      runner.start();
    }

    /** Commit times of the hot order's saves, in the order they resolved (ascending). */
    const hotCommits: number[] = [];
    const quietCommits: number[] = [];
    const staleness: number[] = [];
    let next = 0;
    let saves = 0;
    let errors = 0;
    const started = performance.now();
    const deadline = started + durationMs;
    const sampler = setInterval(() => {
      while (next < hotCommits.length && (hotCommits[next] as number) <= coveredUpTo) next += 1;
      const now = performance.now();
      if (now <= deadline) staleness.push(next < hotCommits.length ? now - (hotCommits[next] as number) : 0);
    }, SAMPLE_EVERY_MS);
    const save = async (qr: QueryRunner, orderId: number, sku: string, qty: number): Promise<boolean> => {
      try {
        await qr.manager.transaction((m) => m.save(m.create(OrderLine, { orderId, sku, qty, unitPrice: '3.25' })));
        return true;
      } catch {
        errors += 1;
        return false;
      }
    };
    await Promise.all([
      ...writers.map(async (qr, w) => {
        for (let i = 0; performance.now() < deadline; i += 1) {
          if (!(await save(qr, hot, `w${w}-${i}`, 1 + (i % 5)))) continue;
          hotCommits.push(performance.now());
          saves += 1;
        }
      }),
      (async () => {
        const qr = quietWriter as QueryRunner;
        for (let i = 0, at = started; at < deadline; i += 1, at += QUIET_EVERY_MS) {
          await sleep(Math.max(0, at - performance.now()));
          if (performance.now() >= deadline) break;
          if (await save(qr, quiet, `q${i}`, 1)) quietCommits.push(performance.now());
        }
      })(),
    ]);
    const ms = performance.now() - started;
    clearInterval(sampler);

    let quietLatencies: number[] = [];
    let quietUncovered = 0;
    let mismatches = 0;
    if (coalescer && runner) {
      // The runner goes on until the last quiet save is recomputed, as it would between the
      // writers' bursts; the last drain() below is not a runner's and would shorten the tail.
      const last = quietCommits[quietCommits.length - 1];
      const tailEnd = performance.now() + (measure ? QUIET_TAIL_MS : 0);
      while (last !== undefined && performance.now() < tailEnd && !quietSpans.some((s) => s.start >= last)) await sleep(20);
      const waitedUntil = performance.now();
      quietLatencies = quietCommits.map((c) => {
        const first = quietSpans.filter((s) => s.start >= c).sort((a, b) => a.start - b.start)[0];
        if (!first) quietUncovered += 1;
        return (first?.end ?? waitedUntil) - c;
      });
      await coalescer.flushed();
      await runner.stop();
      await coalescer.drain();
      coalescer.detach();
      mismatches = await countMismatches(ds.manager, [hot, quiet]);
    }
    onRecomputed = undefined;
    const hotRecomputes = hotSpans.filter((s) => s.end <= deadline).length;
    if (measure) {
      if (coalescer && hotRecomputes === 0)
        notes.push(`${setting}: the hot order was never recomputed while the writers saved (${where})`);
      if (quietUncovered > 0) {
        notes.push(
          `${setting}: ${quietUncovered} of ${quietCommits.length} quiet saves not recomputed ${QUIET_TAIL_MS} ms after the writers stopped (${where}); counted as waiting until then`,
        );
      }
      if (errors > 0) notes.push(`${setting}: ${errors} saves failed (${where})`);
    }
    if (mismatches !== 0)
      failures.push(`hotParent: ${setting} left ${mismatches} mismatched orders after the last drain (${where})`);
    return { saves, ms, errors, hotRecomputes, staleness, quietLatencies, quietUncovered, mismatches };
  };

  const samples = new Samples();
  const totals = new Map<HotSetting, { errors: number; mismatches: number }>();
  try {
    for (let i = 0; i < o.writers; i += 1) {
      const qr = ds.createQueryRunner();
      await qr.connect();
      writers.push(qr);
    }
    quietWriter = ds.createQueryRunner();
    await quietWriter.connect();
    // Warm up every setting (JIT, prepared plans, the subscriber, the runner) before measuring.
    for (const s of SETTINGS) await runOnce(s, 300, 'warm-up', false);
    for (let round = 1; round <= o.rounds; round += 1) {
      progress(`hotParent: round ${round}/${o.rounds}, ${o.writers} writers on 1 hot order`);
      const shift = round % SETTINGS.length;
      const order = [...SETTINGS.slice(shift), ...SETTINGS.slice(0, shift)];
      const stats = new Map<HotSetting, RunStats>();
      for (const setting of order) {
        const s = await runOnce(setting, o.durationMs, `round ${round}`);
        stats.set(setting, s);
        samples.add(`${setting}/rate`, (s.saves / s.ms) * 1000);
        const t = totals.get(setting) ?? { errors: 0, mismatches: 0 };
        t.errors += s.errors;
        t.mismatches += s.mismatches;
        totals.set(setting, t);
        if (!ours(setting)) continue;
        samples.add(`${setting}/hotRecomputes`, s.hotRecomputes / (o.durationMs / 1000));
        samples.add(`${setting}/staleP50`, quantile(s.staleness, 0.5));
        samples.add(`${setting}/staleP99`, quantile(s.staleness, 0.99));
        samples.add(`${setting}/staleMax`, Math.max(0, ...s.staleness));
        samples.add(`${setting}/quietP50`, quantile(s.quietLatencies, 0.5));
        samples.add(`${setting}/quietP99`, quantile(s.quietLatencies, 0.99));
      }
      const bare = stats.get('bare') as RunStats;
      const min0 = stats.get('min0') as RunStats;
      for (const setting of SETTINGS) {
        if (!ours(setting)) continue;
        const s = stats.get(setting) as RunStats;
        samples.add(`${setting}/overBare`, s.saves / s.ms / (bare.saves / bare.ms));
        if (setting !== 'min0') {
          samples.add(`${setting}/quietOverMin0`, quantile(s.quietLatencies, 0.99) / quantile(min0.quietLatencies, 0.99));
        }
      }
    }
  } finally {
    onRecomputed = undefined;
    for (const qr of writers) await qr.release();
    await quietWriter?.release();
    for (const c of coalescers.values()) {
      await c.close();
      await dropNamespace(raw, c.namespace).catch(() => undefined);
    }
    raw.disconnect();
    await ds.drop();
  }
  const rows = SETTINGS.map((setting): HotParentRow => {
    const f = (what: string, digits = 0) => samples.figure(`${setting}/${what}`, digits);
    const t = totals.get(setting);
    const capturing = ours(setting);
    return {
      setting,
      savesPerSec: f('rate'),
      overBare: capturing ? f('overBare', 2) : null,
      hotRecomputesPerSec: capturing ? f('hotRecomputes', 2) : null,
      hotStalenessMs: capturing ? { p50: f('staleP50'), p99: f('staleP99'), max: f('staleMax') } : null,
      quietLatencyMs: capturing ? { p50: f('quietP50'), p99: f('quietP99') } : null,
      quietP99OverMin0: capturing && setting !== 'min0' ? f('quietOverMin0', 2) : null,
      mismatches: capturing ? (t?.mismatches ?? 0) : null,
      errors: t?.errors ?? 0,
    };
  });
  return { writers: o.writers, durationMs: o.durationMs, rounds: o.rounds, rows, notes, failures };
}
