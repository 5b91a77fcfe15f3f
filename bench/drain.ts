import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Coalescer, type DrainResult } from '../src';
import { BenchParent, parentDataSource } from './parent';
import { median, progress, round } from './util';

/** One drain figure, as `npm run bench -- --json` reports it. */
export interface DrainRow {
  mode: 'inproc' | 'processes' | 'literal';
  workers: number;
  parentsPerSec: number;
  lostRaceFraction: number;
  ratioToZpopmax: number;
}

export interface DrainBenchOptions {
  databaseUrl: string;
  redisUrl: string;
  parents: number;
  rounds: number;
}

export interface DrainBenchResult {
  rows: DrainRow[];
  zpopmaxPerSec: number;
  parents: number;
}

/**
 * Drains the same set of parents (no-op recompute) in every mode, each round measuring a
 * `ZPOPMAX 100` loop over the same set too; medians over the rounds.
 */
export async function benchDrain(o: DrainBenchOptions): Promise<DrainBenchResult> {
  const namespace = `bench-drain-${process.pid}`;
  const schema = `bench_drain_${process.pid}`;
  const ds = await parentDataSource(o.databaseUrl, schema);
  const coalescer = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  coalescer.parent<number>(BenchParent, { recompute: async () => undefined });
  const raw = new Redis(o.redisUrl);
  const ids = Array.from({ length: o.parents }, (_, i) => i + 1);
  const fill = async (): Promise<void> => {
    await coalescer.store.clear();
    await coalescer.mark(BenchParent, ids);
  };
  const rate = (ms: number): number => (o.parents / ms) * 1000;
  const lostShare = (results: DrainResult[]): number => {
    const lost = results.reduce((n, r) => n + r.lostRaces, 0);
    const claimed = results.reduce((n, r) => n + r.claimed, 0);
    return claimed + lost === 0 ? 0 : lost / (claimed + lost);
  };
  const modes: { key: string; mode: DrainRow['mode']; workers: number; run: () => Promise<{ ms: number; lost: number }> }[] = [
    { key: 'literal-1', mode: 'literal', workers: 1, run: () => inproc(1, 1) },
    ...[1, 4, 8].map((w) => ({ key: `inproc-${w}`, mode: 'inproc' as const, workers: w, run: () => inproc(w) })),
    { key: 'processes-1', mode: 'processes', workers: 1, run: () => processes(1) },
    { key: 'processes-4', mode: 'processes', workers: 4, run: () => processes(4) },
  ];
  async function inproc(concurrency: number, window?: number): Promise<{ ms: number; lost: number }> {
    await fill();
    const t = performance.now();
    const r = await coalescer.drain({ concurrency, ...(window ? { window } : {}) });
    const ms = performance.now() - t;
    if (r.recomputed !== o.parents) throw new Error(`drain recomputed ${r.recomputed} of ${o.parents}`);
    return { ms, lost: lostShare([r]) };
  }
  async function processes(n: number): Promise<{ ms: number; lost: number }> {
    const children: ChildProcess[] = [];
    try {
      const ready: Promise<unknown>[] = [];
      const done: Promise<DrainResult>[] = [];
      for (let i = 0; i < n; i += 1) {
        const child = fork(join(__dirname, 'worker.js'), [], {
          env: {
            ...process.env,
            DATABASE_URL: o.databaseUrl,
            REDIS_URL: o.redisUrl,
            BENCH_NAMESPACE: namespace,
            BENCH_SCHEMA: schema,
            BENCH_CONCURRENCY: '1',
          },
          stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        });
        children.push(child);
        ready.push(new Promise((resolve) => child.once('message', resolve)));
        done.push(
          new Promise((resolve, reject) => {
            child.on('message', (m: { result?: DrainResult }) => m.result && resolve(m.result));
            child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`bench worker exited with ${code}`))));
          }),
        );
      }
      await Promise.all(ready);
      await fill();
      const t = performance.now();
      for (const child of children) child.send({ go: true });
      const results = await Promise.all(done);
      const ms = performance.now() - t;
      const recomputed = results.reduce((s, r) => s + r.recomputed, 0);
      if (recomputed !== o.parents) throw new Error(`processes recomputed ${recomputed} of ${o.parents}`);
      return { ms, lost: lostShare(results) };
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    }
  }
  async function zpopmax(): Promise<number> {
    await fill();
    const t = performance.now();
    while ((await raw.zpopmax(coalescer.store.keys.pending, 100)).length > 0);
    return performance.now() - t;
  }

  const rates = new Map<string, number[]>();
  const losts = new Map<string, number[]>();
  const zpop: number[] = [];
  try {
    for (let round = 1; round <= o.rounds; round += 1) {
      progress(`drain: round ${round}/${o.rounds} over ${o.parents} parents`);
      zpop.push(rate(await zpopmax()));
      for (const m of modes) {
        const { ms, lost } = await m.run();
        rates.set(m.key, [...(rates.get(m.key) ?? []), rate(ms)]);
        losts.set(m.key, [...(losts.get(m.key) ?? []), lost]);
      }
    }
  } finally {
    await coalescer.store.clear();
    raw.disconnect();
    await coalescer.close();
    await ds.drop();
  }
  const zpopmaxPerSec = median(zpop);
  const rows = modes.map((m) => {
    const perSec = median(rates.get(m.key) ?? []);
    return {
      mode: m.mode,
      workers: m.workers,
      parentsPerSec: round(perSec),
      lostRaceFraction: round(median(losts.get(m.key) ?? []), 3),
      ratioToZpopmax: round(perSec / zpopmaxPerSec, 3),
    };
  });
  return { rows, zpopmaxPerSec: round(zpopmaxPerSec), parents: o.parents };
}
