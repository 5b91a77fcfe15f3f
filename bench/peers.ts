import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Coalescer } from '../src';
import { type Figure, Samples } from './figure';
import { BenchParent, parentDataSource } from './parent';
import { clearNamespace, deleteMatching, dropNamespace, progress } from './util';
import { batches, DISTRIBUTIONS, type Distribution, markIds } from './workload';

/** Sizes of the peer comparison. */
export interface PeersOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Marks per run (child changes), spread over `parents`. */
  marks: number;
  parents: number;
  /** Marks sent per call: `coalescer.mark()` on our side, `addBulk` on BullMQ's. */
  batchSizes: readonly number[];
  rounds: number;
  /** Recomputes (BullMQ: jobs) run at once while draining, on both sides. */
  concurrency: number;
  /** Seed of the workload; both sides get the same marks in the same order. */
  seed: number;
}

/** Marks/s enqueued by both sides for one distribution and batch size. */
export interface PeerMarkRow {
  distribution: Distribution;
  batchSize: number;
  oursPerSec: Figure;
  bullmqPerSec: Figure;
  /** Ours / BullMQ, taken run by run. */
  ratio: Figure;
}

/** Parents/s drained by both sides for one distribution. */
export interface PeerDrainRow {
  distribution: Distribution;
  /** Distinct parents among the marks: the recomputes both sides must make. */
  distinctParents: number;
  oursPerSec: Figure;
  bullmqPerSec: Figure;
  ratio: Figure;
  /** Recomputes made per run: our recompute calls, BullMQ's processor calls. */
  oursRecomputes: Figure;
  bullmqRecomputes: Figure;
}

/** The comparison with BullMQ; `failures` lists every run whose recomputes differ from the distinct parents. */
export interface PeersResult {
  marks: number;
  parents: number;
  concurrency: number;
  markRows: PeerMarkRow[];
  drainRows: PeerDrainRow[];
  failures: string[];
}

interface SideRun {
  markMs: number;
  drainMs: number;
  recomputes: number;
}

/** Longest a BullMQ drain may take before the run is declared broken rather than slow. */
const DRAIN_TIMEOUT_MS = 300_000;

/**
 * Our coalescer against a BullMQ queue with deduplication (dedup id = the parent's member, so a
 * parent waiting in the queue is one job however often it is marked) and a no-op processor, on
 * the same seeded marks: marks/s enqueued in the same batch sizes, then parents/s drained with
 * the same concurrency. Both sides run in every round, their order alternating round by round.
 */
export async function benchPeers(o: PeersOptions): Promise<PeersResult> {
  const namespace = `bench-peers-${process.pid}`;
  // BullMQ keys live under a prefix of their own; each run gets a fresh queue under it.
  const prefix = `bench-bullmq-${process.pid}`;
  const ds = await parentDataSource(o.databaseUrl, `bench_peers_${process.pid}`);
  const raw = new Redis(o.redisUrl);
  // BullMQ requires maxRetriesPerRequest: null on the connections its workers use.
  const bullRedis = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
  let recomputes = 0;
  const coalescer = new Coalescer({ dataSource: ds, redis: o.redisUrl, namespace });
  coalescer.parent<number>(BenchParent, {
    recompute: async () => {
      recomputes += 1;
    },
  });
  let queueSeq = 0;

  const ours = async (ids: readonly number[], batchSize: number): Promise<SideRun> => {
    await clearNamespace(raw, namespace);
    let t = performance.now();
    for (const batch of batches(ids, batchSize)) await coalescer.mark(BenchParent, batch);
    const markMs = performance.now() - t;
    recomputes = 0;
    t = performance.now();
    await coalescer.drain({ concurrency: o.concurrency });
    return { markMs, drainMs: performance.now() - t, recomputes };
  };

  const bullmq = async (ids: readonly number[], batchSize: number): Promise<SideRun> => {
    const name = `marks-${(queueSeq += 1)}`;
    const queue = new Queue(name, { connection: bullRedis, prefix });
    let worker: Worker | undefined;
    try {
      await queue.waitUntilReady();
      let t = performance.now();
      for (const batch of batches(ids, batchSize)) {
        await queue.addBulk(
          batch.map((id) => {
            const member = `BenchParent:${id}`;
            // Completed jobs are removed (what a production queue of this kind sets); the
            // dedup key then goes with them, so a later mark would enqueue the parent again.
            return {
              name: 'recompute',
              data: { member },
              opts: { deduplication: { id: member }, removeOnComplete: true, removeOnFail: true },
            };
          }),
        );
      }
      const markMs = performance.now() - t;
      const jobs = await queue.count();
      let calls = 0;
      worker = new Worker(
        name,
        async () => {
          calls += 1;
        },
        { connection: bullRedis, prefix, concurrency: o.concurrency, autorun: false },
      );
      const w = worker;
      const done = new Promise<void>((resolve, reject) => {
        let completed = 0;
        if (jobs === 0) resolve();
        w.on('completed', () => {
          completed += 1;
          if (completed === jobs) resolve();
        });
        w.on('failed', (_job, error) => reject(error));
        w.on('error', reject);
        setTimeout(
          () => reject(new Error(`BullMQ drained ${completed} of ${jobs} jobs in ${DRAIN_TIMEOUT_MS} ms`)),
          DRAIN_TIMEOUT_MS,
        ).unref();
      });
      await worker.waitUntilReady();
      t = performance.now();
      const running = worker.run();
      await done;
      const drainMs = performance.now() - t;
      await worker.close();
      await running;
      return { markMs, drainMs, recomputes: calls };
    } finally {
      await worker?.close();
      await queue.close();
      await deleteMatching(raw, `${prefix}:${name}:*`);
    }
  };

  const marks = new Samples();
  const drains = new Samples();
  const failures: string[] = [];
  try {
    const workloads = new Map(DISTRIBUTIONS.map((d) => [d, markIds(d, o.marks, o.parents, o.seed)] as const));
    // Warm up both sides (connections, scripts, the JIT) before the clock runs.
    const warm = markIds('uniform', Math.min(2_000, o.marks), Math.min(500, o.parents), o.seed + 1);
    await ours(warm, 100);
    await bullmq(warm, 100);
    for (let round = 1; round <= o.rounds; round += 1) {
      for (const distribution of DISTRIBUTIONS) {
        const ids = workloads.get(distribution) ?? [];
        const distinct = new Set(ids).size;
        for (const batchSize of o.batchSizes) {
          progress(`peers: round ${round}/${o.rounds}, ${distribution}, batches of ${batchSize}`);
          const sides = { ours, bullmq };
          const order = round % 2 === 1 ? (['ours', 'bullmq'] as const) : (['bullmq', 'ours'] as const);
          const runs: Partial<Record<keyof typeof sides, SideRun>> = {};
          for (const side of order) runs[side] = await sides[side](ids, batchSize);
          const a = runs.ours as SideRun;
          const b = runs.bullmq as SideRun;
          for (const [side, run] of [
            ['ours', a],
            ['bullmq', b],
          ] as const) {
            if (run.recomputes !== distinct) {
              failures.push(
                `peers: ${side} made ${run.recomputes} recomputes for ${distinct} distinct parents (${distribution}, batches of ${batchSize}, round ${round})`,
              );
            }
          }
          const key = `${distribution}/${batchSize}`;
          const rate = (ms: number, n: number): number => (n / ms) * 1000;
          marks.add(`${key}/ours`, rate(a.markMs, ids.length));
          marks.add(`${key}/bullmq`, rate(b.markMs, ids.length));
          marks.add(`${key}/ratio`, b.markMs / a.markMs);
          drains.add(`${distribution}/ours`, rate(a.drainMs, distinct));
          drains.add(`${distribution}/bullmq`, rate(b.drainMs, distinct));
          drains.add(`${distribution}/ratio`, b.drainMs / a.drainMs);
          drains.add(`${distribution}/oursRecomputes`, a.recomputes);
          drains.add(`${distribution}/bullmqRecomputes`, b.recomputes);
        }
      }
    }
    return {
      marks: o.marks,
      parents: o.parents,
      concurrency: o.concurrency,
      markRows: DISTRIBUTIONS.flatMap((distribution) =>
        o.batchSizes.map((batchSize) => {
          const key = `${distribution}/${batchSize}`;
          return {
            distribution,
            batchSize,
            oursPerSec: marks.figure(`${key}/ours`),
            bullmqPerSec: marks.figure(`${key}/bullmq`),
            ratio: marks.figure(`${key}/ratio`, 2),
          };
        }),
      ),
      drainRows: DISTRIBUTIONS.map((distribution) => ({
        distribution,
        distinctParents: new Set(workloads.get(distribution)).size,
        oursPerSec: drains.figure(`${distribution}/ours`),
        bullmqPerSec: drains.figure(`${distribution}/bullmq`),
        ratio: drains.figure(`${distribution}/ratio`, 2),
        oursRecomputes: drains.figure(`${distribution}/oursRecomputes`),
        bullmqRecomputes: drains.figure(`${distribution}/bullmqRecomputes`),
      })),
      failures,
    };
  } finally {
    await dropNamespace(raw, namespace);
    await deleteMatching(raw, `${prefix}:*`);
    await coalescer.close();
    raw.disconnect();
    bullRedis.disconnect();
    await ds.drop();
  }
}
