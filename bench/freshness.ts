import 'reflect-metadata';
import type { DataSource } from 'typeorm';
import { Coalescer } from '../src';
import { BenchParent as Parent, parentDataSource } from './parent';

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

/** Both sides measured in the same run. */
export interface FreshnessResult {
  withMaxWait: FreshnessRun & { maxWaitMs: number };
  withoutMaxWait: FreshnessRun;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function run(dataSource: DataSource, o: FreshnessOptions, maxWaitMs: number | undefined): Promise<FreshnessRun> {
  const coalescer = new Coalescer({
    dataSource,
    redis: o.redisUrl,
    namespace: `bench-fresh-${process.pid}-${maxWaitMs ?? 'none'}`,
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
    await coalescer.store.clear();
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
    await coalescer.store.clear().catch(() => undefined);
    await coalescer.close();
  }
}

/**
 * A hot storm (hot parents re-marked all the time, ticks that claim `perTick` parents) while
 * cold parents marked once wait: their p99 wait with and without maxWaitMs, in the same run.
 */
export async function benchFreshness(o: FreshnessOptions): Promise<FreshnessResult> {
  const dataSource = await parentDataSource(o.databaseUrl, `bench_fresh_${process.pid}`);
  try {
    o.log(`freshness: ${o.cold} cold parents behind ${o.hot} hot ones, ${o.perTick} claims per ${o.tickMs} ms tick`);
    const withoutMaxWait = await run(dataSource, o, undefined);
    const withMaxWait = { ...(await run(dataSource, o, o.maxWaitMs)), maxWaitMs: o.maxWaitMs };
    return { withMaxWait, withoutMaxWait };
  } finally {
    await dataSource.drop();
  }
}
