import 'reflect-metadata';
import type { DataSource } from 'typeorm';
import { Redis } from 'ioredis';
import { Coalescer } from '../src';
import { type Figure, quantile, Samples } from './figure';
import { BenchParent as Parent, parentDataSource } from './parent';
import { clearNamespace, dropNamespace, sleep } from './util';

/** Sizes of the freshness run. */
export interface FreshnessOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Parents marked once at the start, whose waits are measured. */
  cold: number;
  /** Parents re-marked all the time. */
  hot: number;
  /** Wait cap of the run with maxWaitMs. */
  maxWaitMs: number;
  /** Longest a run lasts; cold parents not recomputed by then count as waiting this long. */
  capMs: number;
  /** Parents each tick may claim (a runner's maxPerTick). */
  perTick: number;
  tickMs: number;
  /** Runs of each side, interleaved. */
  rounds: number;
  /** Progress lines go here. */
  log: (line: string) => void;
}

/** One run's figures. */
export interface FreshnessRun {
  /** p50 / p99 wait of cold parents, first mark to recompute start (capMs for those never recomputed). */
  p50Ms: number;
  p99Ms: number;
  coldRecomputed: number;
  cold: number;
  hotRecomputes: number;
  durationMs: number;
}

/** One side's figures over the rounds. */
export interface FreshnessSide {
  p50Ms: Figure;
  p99Ms: Figure;
  coldRecomputed: Figure;
  cold: number;
  hotRecomputes: Figure;
  durationMs: Figure;
}

/** Both sides measured in the same rounds. */
export interface FreshnessResult {
  rounds: number;
  withMaxWait: FreshnessSide & { maxWaitMs: number };
  withoutMaxWait: FreshnessSide;
}

async function run(
  dataSource: DataSource,
  o: FreshnessOptions,
  maxWaitMs: number | undefined,
  round: number,
): Promise<FreshnessRun> {
  // A namespace per run: one dropped at the end of a run and used again would be taken for a
  // Redis data loss by the next run's coalescer (the epoch is kept in the database too).
  const namespace = `bench-fresh-${process.pid}-${maxWaitMs ?? 'none'}-${round}`;
  const raw = new Redis(o.redisUrl);
  const coalescer = new Coalescer({
    dataSource,
    redis: o.redisUrl,
    namespace,
    ...(maxWaitMs === undefined ? {} : { maxWaitMs }),
  });
  const coldBase = 1_000_000;
  const waits: number[] = [];
  let hotRecomputes = 0;
  let markedAt = 0;
  coalescer.parent<number>(Parent, {
    recompute: async (id) => {
      if (id >= coldBase) waits.push(performance.now() - markedAt);
      else hotRecomputes += 1;
    },
  });
  try {
    await clearNamespace(raw, namespace);
    const hot = Array.from({ length: o.hot }, (_, i) => i + 1);
    // The storm is running before the cold parents arrive.
    for (let k = 0; k < 20; k += 1) await coalescer.mark(Parent, hot);
    let storming = true;
    const storm = (async () => {
      while (storming) {
        await coalescer.mark(Parent, hot);
        await sleep(o.tickMs / 4);
      }
    })();
    markedAt = performance.now();
    await coalescer.mark(
      Parent,
      Array.from({ length: o.cold }, (_, i) => coldBase + i),
    );
    const until = markedAt + o.capMs;
    let lastLog = markedAt;
    while (waits.length < o.cold && performance.now() < until) {
      await coalescer.drain({ max: o.perTick, concurrency: 4 });
      await sleep(o.tickMs);
      if (performance.now() - lastLog > 2000) {
        lastLog = performance.now();
        o.log(
          `  freshness (${maxWaitMs === undefined ? 'no cap' : `maxWaitMs ${maxWaitMs}`}): ${waits.length}/${o.cold} cold parents recomputed`,
        );
      }
    }
    storming = false;
    await storm;
    const durationMs = performance.now() - markedAt;
    const coldRecomputed = waits.length;
    const all = [...waits, ...Array.from({ length: o.cold - coldRecomputed }, () => o.capMs)].sort((a, b) => a - b);
    return {
      p50Ms: Math.round(quantile(all, 0.5)),
      p99Ms: Math.round(quantile(all, 0.99)),
      coldRecomputed,
      cold: o.cold,
      hotRecomputes,
      durationMs: Math.round(durationMs),
    };
  } finally {
    await coalescer.close();
    await dropNamespace(raw, namespace).catch(() => undefined);
    raw.disconnect();
  }
}

/**
 * A hot storm (hot parents re-marked all the time, ticks that claim `perTick` parents) while
 * cold parents marked once wait: their p99 wait with and without maxWaitMs, the two sides
 * interleaved round by round.
 */
export async function benchFreshness(o: FreshnessOptions): Promise<FreshnessResult> {
  const dataSource = await parentDataSource(o.databaseUrl, `bench_fresh_${process.pid}`);
  const samples = new Samples();
  const sides = [
    { key: 'without', maxWaitMs: undefined },
    { key: 'with', maxWaitMs: o.maxWaitMs },
  ];
  try {
    o.log(`freshness: ${o.cold} cold parents behind ${o.hot} hot ones, ${o.perTick} claims per ${o.tickMs} ms tick`);
    for (let round = 1; round <= o.rounds; round += 1) {
      o.log(`freshness: round ${round}/${o.rounds}`);
      for (const side of round % 2 === 1 ? sides : [...sides].reverse()) {
        const r = await run(dataSource, o, side.maxWaitMs, round);
        samples.add(`${side.key}/p50`, r.p50Ms);
        samples.add(`${side.key}/p99`, r.p99Ms);
        samples.add(`${side.key}/cold`, r.coldRecomputed);
        samples.add(`${side.key}/hot`, r.hotRecomputes);
        samples.add(`${side.key}/duration`, r.durationMs);
      }
    }
  } finally {
    await dataSource.drop();
  }
  const side = (key: string): FreshnessSide => ({
    p50Ms: samples.figure(`${key}/p50`),
    p99Ms: samples.figure(`${key}/p99`),
    coldRecomputed: samples.figure(`${key}/cold`),
    cold: o.cold,
    hotRecomputes: samples.figure(`${key}/hot`),
    durationMs: samples.figure(`${key}/duration`),
  });
  return { rounds: o.rounds, withMaxWait: { ...side('with'), maxWaitMs: o.maxWaitMs }, withoutMaxWait: side('without') };
}
