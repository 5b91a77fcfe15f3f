// One drain worker process of the "processes" drain benchmark. The parent sends { go: true }
// once the set is filled; the worker drains it and sends back its DrainResult.
import { Coalescer } from '../src';
import { BenchParent, parentDataSource } from './parent';

async function main(): Promise<void> {
  const ds = await parentDataSource(process.env.DATABASE_URL as string, process.env.BENCH_SCHEMA as string, false);
  const coalescer = new Coalescer({
    dataSource: ds,
    redis: process.env.REDIS_URL as string,
    namespace: process.env.BENCH_NAMESPACE,
  });
  coalescer.parent<number>(BenchParent, { recompute: async () => undefined });
  // Warm up on a set of its own (connections, scripts, the JIT) before the clock starts, as
  // the in-process modes are warm from their earlier rounds.
  const warm = new Coalescer({
    dataSource: ds,
    redis: process.env.REDIS_URL as string,
    namespace: `${process.env.BENCH_NAMESPACE}-warm-${process.pid}`,
  });
  warm.parent<number>(BenchParent, { recompute: async () => undefined });
  for (let i = 0; i < 3; i += 1) {
    await warm.mark(
      BenchParent,
      Array.from({ length: 5_000 }, (_, k) => k + 1),
    );
    await warm.drain();
  }
  await warm.store.clear();
  await warm.close();
  await coalescer.drain();
  process.send?.({ ready: true });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const result = await coalescer.drain({ concurrency: Number(process.env.BENCH_CONCURRENCY ?? 1) });
  process.send?.({ result });
  await coalescer.close();
  await ds.destroy();
}

main().catch((error: unknown) => {
  process.stderr.write(`bench worker: ${String(error)}\n`);
  process.exit(1);
});
