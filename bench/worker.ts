// One drain worker process of the "processes" drain benchmark, reused across rounds. It warms
// up, replies { ready: true }, then for each { go: true } drains the namespace and replies with
// its DrainResult; { exit: true } closes it.
import { Redis } from 'ioredis';
import { Coalescer, type DrainResult } from '../src';
import { BenchParent, parentDataSource } from './parent';
import { dropNamespace } from './util';

/** What a worker sends back: ready once warm, then one result per drain. */
export type WorkerReply = { ready: true } | { result: DrainResult };

async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL as string;
  const ds = await parentDataSource(process.env.DATABASE_URL as string, process.env.BENCH_SCHEMA as string, false);
  const coalescer = new Coalescer({ dataSource: ds, redis: redisUrl, namespace: process.env.BENCH_NAMESPACE });
  coalescer.parent<number>(BenchParent, { recompute: async () => undefined });
  // Warm up on a set of its own (connections, scripts, the JIT) before the clock starts, as
  // the in-process modes are warm from their earlier runs.
  const warmNamespace = `${process.env.BENCH_NAMESPACE}-warm-${process.pid}`;
  const warm = new Coalescer({ dataSource: ds, redis: redisUrl, namespace: warmNamespace });
  warm.parent<number>(BenchParent, { recompute: async () => undefined });
  for (let i = 0; i < 3; i += 1) {
    await warm.mark(
      BenchParent,
      Array.from({ length: Number(process.env.BENCH_WARM_PARENTS ?? 5_000) }, (_, k) => k + 1),
    );
    await warm.drain();
  }
  const raw = new Redis(redisUrl);
  await dropNamespace(raw, warmNamespace);
  raw.disconnect();
  await warm.close();
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 1);
  // Connections and scripts of the drained namespace warm too (it is empty now).
  await coalescer.drain();
  process.on('message', (m: { go?: boolean; exit?: boolean }) => {
    if (m.exit) {
      void coalescer
        .close()
        .then(() => ds.destroy())
        .finally(() => process.exit(0));
      return;
    }
    if (!m.go) return;
    void coalescer.drain({ concurrency }).then(
      (result) => process.send?.({ result } satisfies WorkerReply),
      (error: unknown) => {
        process.stderr.write(`bench worker: ${String(error)}\n`);
        process.exit(1);
      },
    );
  });
  process.send?.({ ready: true } satisfies WorkerReply);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench worker: ${String(error)}\n`);
  process.exit(1);
});
