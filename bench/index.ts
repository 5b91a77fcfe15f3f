import { Command } from 'commander';
import { benchDrain } from './drain';
import { benchSave } from './save';
import { benchEndToEnd } from './end-to-end';
import { benchFreshness } from './freshness';
import { progress, table } from './util';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function main(): Promise<void> {
  const program = new Command('bench')
    .description(
      'Benchmarks of typeorm-coalesce against local PostgreSQL and Redis: the drain (in-process and 4 processes, against a ZPOPMAX 100 loop), ' +
        'the save path (bare TypeORM, with the subscriber, with an N+1 recompute), the shop end to end, and freshness under a hot storm. ' +
        'Every comparison is measured in the same run. Nothing here is a test: no figure is asserted, but a wrong result (mismatches, ' +
        'recomputes not equal to the orders touched) exits 1.',
    )
    .option('--quick', 'small sizes and few rounds (CI runs this so the bench never rots)')
    .option('--json', 'print one JSON object with every figure on the last line')
    .option('--only <parts>', 'comma-separated parts to run: drain,save,endToEnd,freshness')
    .addHelpText('after', `\nEnvironment: DATABASE_URL (default ${DATABASE_URL}), REDIS_URL (default ${REDIS_URL}).`)
    .parse();
  const o = program.opts<{ quick?: boolean; json?: boolean; only?: string }>();
  const quick = Boolean(o.quick);
  const parts = new Set((o.only ?? 'drain,save,endToEnd,freshness').split(',').map((p) => p.trim()));
  const urls = { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL };
  const started = performance.now();
  const out: Record<string, unknown> = {
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version, quick },
  };

  if (parts.has('drain')) {
    const d = await benchDrain({ ...urls, parents: quick ? 2_000 : 10_000, rounds: quick ? 2 : 5 });
    out.drain = d.rows;
    out.drainBaseline = { zpopmaxPerSec: d.zpopmaxPerSec, parents: d.parents };
    table(`drain: ${d.parents} parents, no-op recompute (ZPOPMAX 100 ceiling: ${d.zpopmaxPerSec}/s)`, d.rows as never);
  }
  if (parts.has('save')) {
    const s = await benchSave({ ...urls, rounds: quick ? 40 : 300, children: 50 });
    out.save = s;
    table(`save: one transaction of ${s.children} children, median of ${s.rounds} interleaved rounds`, [
      { path: 'bare TypeORM', ms: s.bareMs, ratio: 1 },
      { path: 'with typeorm-coalesce', ms: s.oursMs, ratio: s.overheadRatio },
      { path: 'N+1 recompute per child', ms: s.nPlus1Ms, ratio: Math.round((s.nPlus1Ms / s.bareMs) * 100) / 100 },
    ]);
  }
  if (parts.has('endToEnd')) {
    const e = await benchEndToEnd({
      ...urls,
      saves: quick ? 10_000 : 100_000,
      orders: quick ? 1_000 : 10_000,
      perForm: 10,
      writers: 4,
      concurrency: 4,
    });
    out.endToEnd = e;
    table(`end to end: ${e.saves} child saves over ${e.distinctOrders} orders`, [
      { phase: 'saves', perSec: e.savesPerSec, count: e.saves },
      { phase: 'drain, recompute', perSec: e.recompute.parentsPerSec, count: e.recompute.recomputes },
      { phase: 'drain, recomputeMany', perSec: e.recomputeMany.parentsPerSec, count: e.recomputeMany.recomputes },
    ]);
    process.stdout.write(`mismatches: ${e.mismatches}\n`);
    if (e.mismatches !== 0 || e.recomputes !== e.distinctOrders) process.exitCode = 1;
  }
  if (parts.has('freshness')) {
    const f = await benchFreshness({
      ...urls,
      cold: quick ? 2_000 : 10_000,
      hot: 100,
      maxWaitMs: 1_000,
      capMs: quick ? 4_000 : 20_000,
      perTick: 100,
      tickMs: 20,
      log: progress,
    });
    out.freshness = f;
    table('freshness: cold parents behind a hot storm (waits capped at the run length when never recomputed)', [
      {
        run: `maxWaitMs ${f.withMaxWait.maxWaitMs}`,
        p50Ms: f.withMaxWait.p50Ms,
        p99Ms: f.withMaxWait.p99Ms,
        coldDone: `${f.withMaxWait.coldRecomputed}/${f.withMaxWait.cold}`,
      },
      {
        run: 'no maxWaitMs',
        p50Ms: f.withoutMaxWait.p50Ms,
        p99Ms: f.withoutMaxWait.p99Ms,
        coldDone: `${f.withoutMaxWait.coldRecomputed}/${f.withoutMaxWait.cold}`,
      },
    ]);
  }
  out.durationMs = Math.round(performance.now() - started);
  if (o.json) process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
