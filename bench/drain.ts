import { Forked } from './forked';
import { Redis } from 'ioredis';
import { Coalescer, type DrainResult } from '../src';
import { type Figure, Samples } from './figure';
import { BenchParent, parentDataSource } from './parent';
import { clearNamespace, dropNamespace, progress, sleep } from './util';
import type { WorkerReply } from './worker';

/** How a drain row was measured. */
export type DrainMode = 'inproc' | 'processes' | 'slow' | 'literal';

/** One drain figure, as `npm run bench -- --json` reports it. */
export interface DrainRow {
  /**
   * `inproc`: one process, no-op recompute; `processes`: forked worker processes, no-op;
   * `slow`: one process, recomputes of `recomputeMs`; `literal` (a reference): one parent per
   * claim (`window: 1`), the literal ZREVRANGE 0 0 + checked ZREM.
   */
  mode: DrainMode;
  processes: number;
  /** Recomputes at once per process. */
  concurrency: number;
  recomputeMs: number;
  /** Parents drained per run. */
  parents: number;
  parentsPerSec: Figure;
  lostRaceFraction: Figure;
  /** Ratio to the `ZPOPMAX 100` loop of the same round over as many members; null for rows over fewer parents. */
  ratioToZpopmax: Figure | null;
}

/** Sizes of the drain benchmark. */
export interface DrainBenchOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Parents per run of the no-op rows (and of the ZPOPMAX loop). */
  parents: number;
  /** Parents per run of the rows with slow recomputes. */
  slowParents: number;
  /** How long a slow recompute takes (a timer, not CPU). */
  recomputeMs: number;
  /** Parents per run of the literal reference row. */
  literalParents: number;
  /** Parents each worker process drains, three times, to warm up before the rounds. */
  warmParents: number;
  rounds: number;
}

/**
 * What the one-process, concurrency 1 no-op drain costs per parent drained, over the rounds.
 * Redis' side is read from INFO commandstats, which is server-wide: commands other clients run
 * meanwhile are counted too (the bench says so on stderr when it sees some).
 */
export interface DrainCost {
  /** This process's CPU (user + system, `process.cpuUsage()`) over the drain, µs per parent. */
  nodeCpuUs: Figure;
  /**
   * Redis' time executing the drain's commands, µs per parent (commandstats usec). A script's
   * usec includes the commands it runs, which commandstats also counts under their own names;
   * those are counted once here, within their script (summing every cmdstat_* would count them
   * twice).
   */
  redisUs: Figure;
  /** Commands the drain sent to Redis (a script call is one), per parent. */
  redisCallsPerParent: Figure;
  /** Commands the drain's scripts ran inside Redis, per parent (commandstats counts them as calls too). */
  inScriptCallsPerParent: Figure;
  /**
   * Script calls Redis ran during the drain beyond those the drain sent: other clients' (other
   * programs on the same Redis). Not 0: the Redis figures above include their work.
   */
  otherClientsScriptCalls: Figure;
}

/** Every drain row, and the ceiling they are compared with. */
export interface DrainBenchResult {
  rows: DrainRow[];
  /** Cost per parent of the `inproc` row at concurrency 1. */
  costPerParent: DrainCost;
  zpopmaxPerSec: Figure;
  parents: number;
  /** Slow recomputes: parents/s at each concurrency over concurrency 1, run by run. */
  slowSpeedup: { concurrency: number; overConcurrency1: Figure }[];
  /** No-op recomputes: 2 worker processes over 1, run by run. */
  twoProcessesOverOne: Figure;
}

/** One run's cost, summed over the drain (divided by the parents when recorded). */
interface Cost {
  cpuUs: number;
  redisUs: number;
  calls: number;
  inScriptCalls: number;
  /** Script calls of other clients seen meanwhile. */
  otherScriptCalls: number;
}

interface Mode {
  mode: DrainMode;
  processes: number;
  concurrency: number;
  recomputeMs: number;
  parents: number;
  run: () => Promise<{ ms: number; results: DrainResult[]; cost?: Cost }>;
}

/** Calls and usec of every command since Redis started (INFO commandstats). */
async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(m[1] as string, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return stats;
}

/** Commands that run a script: their usec includes the commands the script runs. */
const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/**
 * Counts, by name, the commands every ioredis client of this process sends (pipelined and
 * MULTI ones included) until the returned function is called, which gives the counts.
 */
function countSentCommands(): () => Map<string, number> {
  const proto = Redis.prototype;
  const send = proto.sendCommand;
  const sent = new Map<string, number>();
  proto.sendCommand = function (this: Redis, ...args: Parameters<Redis['sendCommand']>) {
    const name = args[0].name.toLowerCase();
    sent.set(name, (sent.get(name) ?? 0) + 1);
    return send.apply(this, args);
  };
  return () => {
    proto.sendCommand = send;
    return sent;
  };
}

/**
 * Runs `drain` and measures what it costs: this process's CPU, and from INFO commandstats
 * before and after, Redis' usec and calls. Scripts' usec include the commands they run, which
 * commandstats also counts under their own names; so a command name counts for the share of its
 * calls this process sent, and the rest of its calls ran inside scripts.
 */
async function measureCost<T>(raw: Redis, drain: () => Promise<T>): Promise<{ value: T; cost: Cost }> {
  const before = await commandStats(raw);
  const counted = countSentCommands();
  const cpu = process.cpuUsage();
  let value: T;
  let sent: Map<string, number>;
  try {
    value = await drain();
  } finally {
    sent = counted();
  }
  const used = process.cpuUsage(cpu);
  const after = await commandStats(raw);
  const cost: Cost = { cpuUs: used.user + used.system, redisUs: 0, calls: 0, inScriptCalls: 0, otherScriptCalls: 0 };
  // Script calls are one bucket: ioredis sends a script's first call on a connection as EVAL
  // though it was made (and counted here) as EVALSHA.
  const scriptsSent = [...sent].reduce((n, [name, count]) => n + (SCRIPT_COMMANDS.has(name) ? count : 0), 0);
  let scriptCalls = 0;
  for (const [name, a] of after) {
    // The INFO of `before` is the bench's, not the drain's.
    if (name === 'info') continue;
    const b = before.get(name) ?? { calls: 0, usec: 0 };
    const calls = a.calls - b.calls;
    if (calls <= 0) continue;
    if (SCRIPT_COMMANDS.has(name)) {
      cost.redisUs += a.usec - b.usec;
      scriptCalls += calls;
      continue;
    }
    const ours = Math.min(calls, sent.get(name) ?? 0);
    cost.redisUs += ((a.usec - b.usec) * ours) / calls;
    cost.inScriptCalls += calls - ours;
    cost.calls += ours;
  }
  cost.calls += Math.min(scriptCalls, scriptsSent);
  cost.otherScriptCalls = Math.max(0, scriptCalls - scriptsSent);
  return { value, cost };
}

/** Concurrencies of the rows with slow recomputes. */
const SLOW_CONCURRENCY = [1, 8, 32] as const;

const key = (m: Pick<Mode, 'mode' | 'processes' | 'concurrency'>): string => `${m.mode}-${m.processes}x${m.concurrency}`;

/** A drain worker process of bench/worker.ts, reused across rounds. */
class DrainWorker {
  private constructor(private readonly process: Forked<{ go?: true; exit?: true }, WorkerReply>) {}

  static async start(env: Record<string, string>): Promise<DrainWorker> {
    return new DrainWorker(await Forked.start('worker.js', 'worker', env));
  }

  /** Tells the worker to drain; resolves with its result. */
  async drain(): Promise<DrainResult> {
    const r = await this.process.request({ go: true });
    if (!('result' in r)) throw new Error('bench worker answered a drain without a result');
    return r.result;
  }

  /** Asks the worker to close and exit; kills it if it has not within 5 s. */
  stop(): Promise<void> {
    return this.process.stop({ exit: true }, 5_000);
  }
}

/**
 * Drains the same parents in every mode, each round measuring a `ZPOPMAX 100` loop over as many
 * members first: no-op recomputes in one process (concurrency 1 / 4 / 8) and in 1 / 2 forked
 * processes; 5 ms recomputes at concurrency 1 / 8 / 32; and, as a reference over fewer parents,
 * the literal one-parent claim. Medians over the rounds, with min and max.
 */
export async function benchDrain(o: DrainBenchOptions): Promise<DrainBenchResult> {
  const namespace = `bench-drain-${process.pid}`;
  const slowNamespace = `${namespace}-slow`;
  const schema = `bench_drain_${process.pid}`;
  const ds = await parentDataSource(o.databaseUrl, schema);
  const coalescer = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  coalescer.parent<number>(BenchParent, { recompute: async () => undefined });
  const slow = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace: slowNamespace });
  slow.parent<number>(BenchParent, { recompute: () => sleep(o.recomputeMs) });
  const raw = new Redis(o.redisUrl);
  const ids = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
  const fill = async (c: Coalescer, n: number): Promise<void> => {
    await clearNamespace(raw, c.namespace);
    await c.mark(BenchParent, ids(n));
  };
  const workers: DrainWorker[] = [];

  const inproc =
    (c: Coalescer, parents: number, concurrency: number, window?: number, costed = false) =>
    async (): Promise<{ ms: number; results: DrainResult[]; cost?: Cost }> => {
      await fill(c, parents);
      const timed = async (): Promise<{ ms: number; r: DrainResult }> => {
        const t = performance.now();
        const r = await c.drain({ concurrency, ...(window ? { window } : {}) });
        return { ms: performance.now() - t, r };
      };
      if (!costed) {
        const { ms, r } = await timed();
        return { ms, results: [r] };
      }
      const { value, cost } = await measureCost(raw, timed);
      return { ms: value.ms, results: [value.r], cost };
    };
  const processes = (n: number) => async (): Promise<{ ms: number; results: DrainResult[] }> => {
    await fill(coalescer, o.parents);
    const t = performance.now();
    const results = await Promise.all(workers.slice(0, n).map((w) => w.drain()));
    return { ms: performance.now() - t, results };
  };
  const modes: Mode[] = [
    ...[1, 4, 8].map((c) => ({
      mode: 'inproc' as const,
      processes: 1,
      concurrency: c,
      recomputeMs: 0,
      parents: o.parents,
      // The default drain (concurrency 1) also measures its cost per parent, outside its clock.
      run: inproc(coalescer, o.parents, c, undefined, c === 1),
    })),
    ...[1, 2].map((n) => ({
      mode: 'processes' as const,
      processes: n,
      concurrency: 1,
      recomputeMs: 0,
      parents: o.parents,
      run: processes(n),
    })),
    ...SLOW_CONCURRENCY.map((c) => ({
      mode: 'slow' as const,
      processes: 1,
      concurrency: c,
      recomputeMs: o.recomputeMs,
      parents: o.slowParents,
      run: inproc(slow, o.slowParents, c),
    })),
    // The literal protocol runs ~5,000 parents/s: a reference over fewer parents, not a contender.
    {
      mode: 'literal',
      processes: 1,
      concurrency: 1,
      recomputeMs: 0,
      parents: o.literalParents,
      run: inproc(coalescer, o.literalParents, 1, 1),
    },
  ];

  const zpopmaxKey = `{${namespace}}:zpopmax-reference`;
  const zpopmax = async (): Promise<number> => {
    await raw.del(zpopmaxKey);
    for (let from = 1; from <= o.parents; from += 10_000) {
      const members = ids(Math.min(10_000, o.parents - from + 1)).flatMap((i) => [1, `BenchParent:${from + i - 1}`]);
      await raw.zadd(zpopmaxKey, ...members);
    }
    const t = performance.now();
    while ((await raw.zpopmax(zpopmaxKey, 100)).length > 0);
    return performance.now() - t;
  };

  const samples = new Samples();
  try {
    const env = {
      DATABASE_URL: o.databaseUrl,
      REDIS_URL: o.redisUrl,
      BENCH_NAMESPACE: namespace,
      BENCH_SCHEMA: schema,
      BENCH_WARM_PARENTS: String(o.warmParents),
    };
    for (let i = 0; i < 2; i += 1) workers.push(await DrainWorker.start({ ...env, BENCH_CONCURRENCY: '1' }));
    for (let round = 1; round <= o.rounds; round += 1) {
      progress(`drain: round ${round}/${o.rounds} over ${o.parents} parents`);
      const zpopPerSec = (o.parents / (await zpopmax())) * 1000;
      samples.add('zpopmax', zpopPerSec);
      const rates = new Map<string, number>();
      for (const m of modes) {
        const { ms, results, cost } = await m.run();
        const recomputed = results.reduce((n, r) => n + r.recomputed, 0);
        if (recomputed !== m.parents) throw new Error(`drain (${key(m)}) recomputed ${recomputed} of ${m.parents}`);
        const lost = results.reduce((n, r) => n + r.lostRaces, 0);
        const claimed = results.reduce((n, r) => n + r.claimed, 0);
        const perSec = (m.parents / ms) * 1000;
        samples.add(`${key(m)}/rate`, perSec);
        rates.set(key(m), perSec);
        samples.add(`${key(m)}/lost`, claimed + lost === 0 ? 0 : lost / (claimed + lost));
        if (m.parents === o.parents) samples.add(`${key(m)}/ratio`, perSec / zpopPerSec);
        if (cost) {
          samples.add('cost/cpu', cost.cpuUs / m.parents);
          samples.add('cost/redis', cost.redisUs / m.parents);
          samples.add('cost/calls', cost.calls / m.parents);
          samples.add('cost/inScript', cost.inScriptCalls / m.parents);
          samples.add('cost/others', cost.otherScriptCalls);
        }
      }
      const rate = (k: string): number => rates.get(k) ?? Number.NaN;
      for (const c of SLOW_CONCURRENCY) samples.add(`slow-speedup-${c}`, rate(`slow-1x${c}`) / rate('slow-1x1'));
      samples.add('processes-2-over-1', rate('processes-2x1') / rate('processes-1x1'));
    }
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await dropNamespace(raw, namespace);
    await dropNamespace(raw, slowNamespace);
    raw.disconnect();
    await coalescer.close();
    await slow.close();
    await ds.drop();
  }
  const rows = modes.map((m) => ({
    mode: m.mode,
    processes: m.processes,
    concurrency: m.concurrency,
    recomputeMs: m.recomputeMs,
    parents: m.parents,
    parentsPerSec: samples.figure(`${key(m)}/rate`),
    lostRaceFraction: samples.figure(`${key(m)}/lost`, 3),
    ratioToZpopmax: m.parents === o.parents ? samples.figure(`${key(m)}/ratio`, 3) : null,
  }));
  return {
    rows,
    costPerParent: {
      nodeCpuUs: samples.figure('cost/cpu', 2),
      redisUs: samples.figure('cost/redis', 2),
      redisCallsPerParent: samples.figure('cost/calls', 4),
      inScriptCallsPerParent: samples.figure('cost/inScript', 3),
      otherClientsScriptCalls: samples.figure('cost/others'),
    },
    zpopmaxPerSec: samples.figure('zpopmax'),
    parents: o.parents,
    slowSpeedup: SLOW_CONCURRENCY.map((c) => ({ concurrency: c, overConcurrency1: samples.figure(`slow-speedup-${c}`, 2) })),
    twoProcessesOverOne: samples.figure('processes-2-over-1', 2),
  };
}
