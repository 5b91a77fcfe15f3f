import { Command } from 'commander';
import { benchDrain } from './drain';
import { benchSave } from './save';
import { benchEndToEnd } from './end-to-end';
import { benchFreshness } from './freshness';
import { benchPeers } from './peers';
import { benchContention, CAPTURING } from './contention';
import { benchHotParent } from './hot-parent';
import { benchAggregates } from './aggregates';
import { benchCapture } from './capture';
import { benchTriggerLoad } from './trigger-load';
import { cell } from './figure';
import { machineInfo } from './machine';
import { Report } from './report';
import { deleteMatching, progress, table } from './util';
import { Redis } from 'ioredis';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
/** Seed of every generated workload: the same marks on every run and on both sides of a comparison. */
const SEED = 20_241_122;

/** What every part gets. */
interface PartContext {
  databaseUrl: string;
  redisUrl: string;
  /** MySQL/MariaDB, for the parts that compare both databases. */
  mysqlUrl: string;
  quick: boolean;
  report: Report;
  /** The part's figures go here, under its name, in the JSON line. */
  out: Record<string, unknown>;
}

/**
 * The parts in the order they run. Each measures every side of its comparisons in the same
 * run, prints its tables, records its targets and failures, and puts its figures in `out`.
 */
const PARTS: Record<string, (c: PartContext) => Promise<void>> = {
  async drain({ quick, report, out, ...urls }) {
    const d = await benchDrain({
      ...urls,
      parents: quick ? 5_000 : 100_000,
      slowParents: quick ? 100 : 1_000,
      recomputeMs: 5,
      literalParents: quick ? 300 : 5_000,
      warmParents: quick ? 1_000 : 5_000,
      rounds: 3,
    });
    out.drain = d;
    table(
      `drain: no-op rows over ${d.parents} parents (ZPOPMAX 100 over as many: ${cell(d.zpopmaxPerSec)}/s); median (min-max) of ${d.zpopmaxPerSec.runs} rounds`,
      d.rows.map((r) => ({
        mode: r.mode === 'literal' ? 'literal window 1 (reference)' : r.mode,
        processes: r.processes,
        concurrency: r.concurrency,
        recomputeMs: r.recomputeMs,
        parents: r.parents,
        parentsPerSec: cell(r.parentsPerSec),
        lostRaces: cell(r.lostRaceFraction),
        ratioToZpopmax: cell(r.ratioToZpopmax),
      })),
    );
    const cost = d.costPerParent;
    table(
      `drain: cost per parent of the no-op drain (1 process, concurrency 1) over ${d.parents} parents; median (min-max) of ${cost.nodeCpuUs.runs} rounds`,
      [
        { cost: 'Node CPU, µs (user + system)', perParent: cell(cost.nodeCpuUs) },
        { cost: 'Redis, µs (commandstats usec)', perParent: cell(cost.redisUs) },
        { cost: 'Redis calls sent', perParent: cell(cost.redisCallsPerParent) },
        { cost: 'commands run inside scripts', perParent: cell(cost.inScriptCallsPerParent) },
      ],
    );
    if (cost.otherClientsScriptCalls.max > 0) {
      process.stdout.write(
        `other Redis clients ran ${cell(cost.otherClientsScriptCalls)} script calls during the measured drains: the Redis figures include their work\n`,
      );
    }
    const byDefault = d.rows.find((r) => r.mode === 'inproc' && r.concurrency === 1);
    report.atLeast('drain', 'drain() (concurrency 1) / ZPOPMAX 100', byDefault?.ratioToZpopmax?.median ?? 0, 0.3);
    const eight = d.slowSpeedup.find((s) => s.concurrency === 8);
    report.atLeast('drain', '5 ms recomputes: concurrency 8 / 1', eight?.overConcurrency1.median ?? 0, 6);
  },

  async save({ quick, report, out, ...urls }) {
    const s = await benchSave({ ...urls, runs: quick ? 3 : 5, formsPerRun: quick ? 10 : 100, children: 50 });
    out.save = s;
    table(`save: one transaction of ${s.children} children, ms; median (min-max) of ${s.runs} runs of ${s.formsPerRun} forms`, [
      { path: 'bare TypeORM', ms: cell(s.bareMs), ratio: '' },
      { path: 'with typeorm-coalesce', ms: cell(s.oursMs), ratio: `${cell(s.overheadRatio)} x bare` },
      {
        path: 'counter cache (SELECT + UPDATE per child)',
        ms: cell(s.counterCacheMs),
        ratio: `${cell(s.speedupVsCounterCache)} x ours`,
      },
    ]);
    report.atMost('save', 'ours / bare', s.overheadRatio.median, 1.1);
    report.atLeast('save', 'counter cache / ours', s.speedupVsCounterCache.median, 8);
  },

  async endToEnd({ quick, report, out, ...urls }) {
    const e = await benchEndToEnd({
      ...urls,
      saves: quick ? 5_000 : 100_000,
      orders: quick ? 500 : 10_000,
      perForm: 10,
      writers: 4,
      concurrency: 4,
      runs: 3,
    });
    out.endToEnd = e;
    table(`end to end: ${e.saves} child saves over ${e.distinctOrders} orders; median (min-max) of ${e.runs} runs`, [
      { phase: 'saves', perSec: cell(e.savesPerSec), count: e.saves },
      { phase: 'drain, recompute', perSec: cell(e.recompute.parentsPerSec), count: cell(e.recompute.recomputes) },
      { phase: 'drain, recomputeMany', perSec: cell(e.recomputeMany.parentsPerSec), count: cell(e.recomputeMany.recomputes) },
      {
        phase: 'drain, declarative aggregates',
        perSec: cell(e.declarative.throughDrainPerSec),
        count: cell(e.declarative.recomputes),
      },
      {
        phase: `their UPDATE alone, batches of ${e.declarative.batchSize}`,
        perSec: cell(e.declarative.sqlAlonePerSec),
        count: e.distinctOrders,
      },
    ]);
    process.stdout.write(
      `declarative through the drain / their UPDATE alone: ${cell(e.declarative.ratio)}; mismatches: ${e.mismatches}\n`,
    );
    report.atLeast('endToEnd', 'recomputeMany / recompute', e.manyOverOne.median, 5);
    report.atLeast('endToEnd', 'declarative: through the drain / UPDATE alone', e.declarative.ratio.median, 0.5);
    report.fail(...e.failures);
  },

  async freshness({ quick, out, ...urls }) {
    const f = await benchFreshness({
      ...urls,
      cold: quick ? 500 : 10_000,
      hot: 100,
      maxWaitMs: 1_000,
      capMs: quick ? 1_200 : 20_000,
      perTick: 100,
      tickMs: 20,
      rounds: 3,
      log: progress,
    });
    out.freshness = f;
    table(
      `freshness: cold parents behind a hot storm, ms (waits capped at the run length when never recomputed); median (min-max) of ${f.rounds} rounds`,
      [
        { run: `maxWaitMs ${f.withMaxWait.maxWaitMs}`, side: f.withMaxWait },
        { run: 'no maxWaitMs', side: f.withoutMaxWait },
      ].map(({ run, side }) => ({
        run,
        p50Ms: cell(side.p50Ms),
        p99Ms: cell(side.p99Ms),
        coldDone: `${cell(side.coldRecomputed)} of ${side.cold}`,
      })),
    );
  },

  async peers({ quick, report, out, ...urls }) {
    const p = await benchPeers({
      ...urls,
      marks: quick ? 3_000 : 100_000,
      parents: quick ? 300 : 10_000,
      batchSizes: [10, 100],
      rounds: 3,
      concurrency: 8,
      seed: SEED,
    });
    out.peers = { bullmq: p };
    table(
      `peers, marks: ${p.marks} marks over ${p.parents} parents, marks/s; ours = coalescer.mark(), BullMQ = addBulk with deduplication; median (min-max) of ${p.markRows[0]?.ratio.runs ?? 0} rounds`,
      p.markRows.map((r) => ({
        distribution: r.distribution,
        batchSize: r.batchSize,
        ours: cell(r.oursPerSec),
        bullmq: cell(r.bullmqPerSec),
        oursOverBullmq: cell(r.ratio),
      })),
    );
    table(
      `peers, drain: parents/s, concurrency ${p.concurrency} on both sides, no-op recompute / processor`,
      p.drainRows.map((r) => ({
        distribution: r.distribution,
        distinctParents: r.distinctParents,
        ours: cell(r.oursPerSec),
        bullmq: cell(r.bullmqPerSec),
        oursOverBullmq: cell(r.ratio),
        oursRecomputes: cell(r.oursRecomputes),
        bullmqRecomputes: cell(r.bullmqRecomputes),
      })),
    );
    for (const r of p.markRows) {
      report.atLeast('peers', `marks/s ours / BullMQ addBulk (${r.distribution}, batches of ${r.batchSize})`, r.ratio.median, 4);
    }
    for (const r of p.drainRows) report.atLeast('peers', `drain ours / BullMQ (${r.distribution})`, r.ratio.median, 8);
    report.fail(...p.failures);
  },

  async contention({ quick, report, out, ...urls }) {
    const c = await benchContention({
      ...urls,
      writers: [8, 32],
      hotParents: quick ? [1] : [1, 10],
      durationMs: quick ? 500 : 3_000,
      rounds: 3,
      lockTimeoutMs: 2_000,
      seed: SEED,
    });
    out.contention = c;
    table(
      `contention: writers on their own connections inserting lines of hot orders for ${c.durationMs} ms; median (min-max) of ${c.rounds} rounds; errors and mismatches summed`,
      c.rows.map((r) => ({
        writers: r.writers,
        hot: r.hotParents,
        variant: r.variant === 'sync' ? 'sync (UPDATE in the tx)' : r.variant,
        savesPerSec: cell(r.savesPerSec),
        p50Ms: cell(r.p50Ms),
        p99Ms: cell(r.p99Ms),
        deadlocks: r.deadlocks,
        lockTimeouts: r.lockTimeouts,
        cancelled: r.cancelled,
        otherErrors: r.otherErrors,
        mismatches: r.mismatches ?? '-',
        recomputes: cell(r.recomputes),
      })),
    );
    table(
      `contention: each capturing variant over bare, run by run; median (min-max) of ${c.rounds} rounds`,
      c.comparisons.flatMap((x) =>
        x.overBare.map((v) => ({
          writers: x.writers,
          hot: x.hotParents,
          variant: v.variant,
          savesPerSec: `${cell(v.savesPerSec)} x bare`,
          p99: `${cell(v.p99Ms)} x bare`,
        })),
      ),
    );
    const at = c.comparisons.find((x) => x.writers === 32 && x.hotParents === 1);
    report.atLeast('contention', 'saves/s ours / sync (32 writers, 1 hot)', at?.savesOverSync.median ?? 0, 5);
    report.atMost('contention', 'p99 ours / bare (32 writers, 1 hot)', at?.p99OverBare.median ?? Number.POSITIVE_INFINITY, 1.5);
    for (const x of c.comparisons) {
      if (![8, 32].includes(x.writers) || ![1, 10].includes(x.hotParents)) continue;
      for (const v of x.overBare) {
        if (v.variant !== 'ours' && v.variant !== 'ours-forked') continue;
        const where = `(${x.writers} writers, ${x.hotParents} hot)`;
        report.atLeast('contention', `saves/s ${v.variant} / bare ${where}`, v.savesPerSec.median, 0.9);
        report.atMost('contention', `p99 ${v.variant} / bare ${where}`, v.p99Ms.median, 1.2);
      }
    }
    const triggers = at?.overBare.find((v) => v.variant === 'triggers');
    report.atLeast('contention', 'saves/s triggers / bare (32 writers, 1 hot)', triggers?.savesPerSec.median ?? 0, 0.9);
    for (const variant of CAPTURING) {
      const deadlocks = c.rows.filter((r) => r.variant === variant).reduce((n, r) => n + r.deadlocks, 0);
      report.atMost('contention', `deadlocks, ${variant} (all runs)`, deadlocks, 0);
    }
    report.fail(...c.failures);
  },

  async hotParent({ quick, report, out, ...urls }) {
    const h = await benchHotParent({
      ...urls,
      writers: quick ? 8 : 32,
      durationMs: quick ? 1_500 : 4_000,
      rounds: quick ? 2 : 5,
    });
    out.hotParent = h;
    table(
      `hotParent: ${h.writers} writers inserting lines of one hot order for ${h.durationMs} ms, a quiet order a line every 250 ms; ours = default options and runner but minIntervalMs; staleness and latency in ms; median (min-max) of ${h.rounds} rounds`,
      h.rows.map((r) => ({
        setting: r.setting,
        savesPerSec: cell(r.savesPerSec),
        overBare: cell(r.overBare),
        hotRecomputesPerSec: cell(r.hotRecomputesPerSec),
        staleP50: cell(r.hotStalenessMs?.p50),
        staleP99: cell(r.hotStalenessMs?.p99),
        staleMax: cell(r.hotStalenessMs?.max),
        quietP50: cell(r.quietLatencyMs?.p50),
        quietP99: cell(r.quietLatencyMs?.p99),
        mismatches: r.mismatches ?? '-',
      })),
    );
    for (const note of h.notes) process.stdout.write(`hotParent: ${note}\n`);
    const byDefault = h.rows.find((r) => r.setting === 'min500');
    report.atLeast('hotParent', 'saves/s min500 / bare', byDefault?.overBare?.median ?? 0, 0.9);
    report.atMost(
      'hotParent',
      'hot order staleness p99 ms, min500',
      byDefault?.hotStalenessMs?.p99.median ?? Number.POSITIVE_INFINITY,
      2_000,
    );
    report.atMost(
      'hotParent',
      'quiet order latency p99 min500 / min0',
      byDefault?.quietP99OverMin0?.median ?? Number.POSITIVE_INFINITY,
      1.2,
    );
    report.fail(...h.failures);
  },

  async aggregates({ quick, report, out, ...urls }) {
    const a = await benchAggregates({ ...urls, orders: quick ? 2_000 : 10_000, rounds: quick ? 3 : 7 });
    out.aggregates = a;
    table(
      `aggregates: ${a.orders} orders, ${a.lines} lines, batches of ${a.batchSize}, ${a.rounds} interleaved rounds (parents/s)`,
      [
        { recompute: 'declarative aggregates', median: a.declarative.median, min: a.declarative.min, max: a.declarative.max },
        {
          recompute: 'hand-written recomputeOrders',
          median: a.handWritten.median,
          min: a.handWritten.min,
          max: a.handWritten.max,
        },
        { recompute: `verify (batch ${a.verify.batch})`, median: a.verify.median, min: a.verify.min, max: a.verify.max },
      ],
    );
    report.atMost('aggregates', 'hand-written / declarative recomputeMany', a.ratio, 1.2);
    if (a.mismatches !== 0) report.fail(`aggregates: ${a.mismatches} orders mismatched after the rounds`);
    if (a.drifted !== 0) report.fail(`aggregates: verify reported ${a.drifted} drifted orders on fresh data`);
  },

  async capture({ quick, report, out, ...urls }) {
    const c = await benchCapture({
      databaseUrl: urls.databaseUrl,
      redisUrl: urls.redisUrl,
      rounds: quick ? 30 : 300,
      freshSamples: quick ? 5 : 30,
      relaySamples: quick ? 10 : 60,
    });
    out.capture = c;
    table(`capture: one transaction of ${c.children} children, ${c.rounds} interleaved rounds (ms)`, [
      { path: 'bare TypeORM', medianMs: c.bare.medianMs, minMs: c.bare.minMs, maxMs: c.bare.maxMs, ratio: c.bare.ratio },
      {
        path: 'subscriber',
        medianMs: c.subscriber.medianMs,
        minMs: c.subscriber.minMs,
        maxMs: c.subscriber.maxMs,
        ratio: c.subscriber.ratio,
      },
      {
        path: 'triggers',
        medianMs: c.triggers.medianMs,
        minMs: c.triggers.minMs,
        maxMs: c.triggers.maxMs,
        ratio: c.triggers.ratio,
      },
    ]);
    table(`capture: trigger relay, raw-SQL commit to its mark in Redis, ${c.relay.samples} commits 0-1 s apart (ms)`, [
      { relay: 'poll (default relayPoll)', ...c.relay },
    ]);
    table(`capture: fresh() from commit to resolve, ${c.fresh.runner.samples} saves each (ms)`, [
      { mode: `runner (schedule ${c.fresh.runnerSchedule})`, ...c.fresh.runner },
      { mode: 'fresh({ now: true })', ...c.fresh.now },
    ]);
    report.atMost('capture', 'subscriber / bare', c.subscriber.ratio, 1.1);
  },

  async triggerLoad({ quick, report, out, ...urls }) {
    const t = await benchTriggerLoad({ ...urls, durationMs: quick ? 1_000 : 5_000, rounds: quick ? 1 : 3 });
    out.triggerLoad = t;
    for (const [name, rows] of [
      ['PostgreSQL', t.postgres],
      ['MariaDB', t.mariadb],
    ] as const) {
      table(
        `triggerLoad, ${name}: writers inserting lines by raw SQL for ${t.durationMs} ms, inserts/s and relay ms (commit to Redis, under that load); median (min-max) of ${t.rounds} rounds`,
        rows.map((r) => ({
          writers: r.writers,
          variant: r.variant === 'notify' ? 'triggers + NOTIFY (earlier versions)' : r.variant,
          perSec: cell(r.txPerSec),
          ratio: cell(r.ratio),
          relayP50: r.relay?.p50Ms ?? '',
          relayP99: r.relay?.p99Ms ?? '',
        })),
      );
    }
    const at32 = (v: string) => t.postgres.find((r) => r.writers === 32 && r.variant === v)?.ratio.median ?? 0;
    report.atLeast('triggerLoad', 'PostgreSQL, 32 writers: triggers / bare', at32('triggers'), 0.5);
  },
};

async function main(): Promise<void> {
  const names = Object.keys(PARTS);
  const program = new Command('bench')
    .description(
      'Benchmarks of typeorm-coalesce against local PostgreSQL and Redis: the drain (in-process, 1 and 2 processes, 5 ms recomputes, ' +
        'against a ZPOPMAX 100 loop; its CPU, Redis time and Redis calls per parent), the save path (bare TypeORM, with the subscriber, with a counter cache per child), the shop end ' +
        'to end (with declared aggregates: through the drain against their UPDATE alone), freshness under a hot storm, peers (BullMQ with deduplication on the same marks) and contention (concurrent writers ' +
        "on hot parents: bare, the synchronous update, ours and trigger capture, each with its runner in the writers' process or forked), a hot parent's minimum interval (bare against minIntervalMs 0, 250, 500 and 1000: the writers' saves/s, the hot parent's recomputes/s and staleness, a quiet parent's latency), declarative aggregates against hand-written SQL, the save path with trigger capture, the trigger relay latency, fresh() latency, and trigger capture under 8 and 32 raw-SQL writers (PostgreSQL with and without the NOTIFY of earlier versions, MariaDB). Every comparison is measured in the same run; every figure is a median " +
        'of at least 3 interleaved runs, with min and max. Nothing here is a test: no figure is asserted, but a wrong result ' +
        '(mismatched totals, recomputes not equal to the parents touched) exits 1.',
    )
    .option('--quick', 'small sizes (CI runs this so the bench never rots)')
    .option('--json', 'print one JSON object with every figure on the last line')
    .option('--only <parts>', `comma-separated parts to run: ${names.join(',')}`)
    .addHelpText(
      'after',
      `\nEnvironment: DATABASE_URL (default ${DATABASE_URL}), REDIS_URL (default ${REDIS_URL}), MYSQL_URL (default ${MYSQL_URL}, triggerLoad only).`,
    )
    .parse();
  const o = program.opts<{ quick?: boolean; json?: boolean; only?: string }>();
  const quick = Boolean(o.quick);
  const selected = o.only === undefined ? names : o.only.split(',').map((p) => p.trim());
  const unknown = selected.filter((p) => !names.includes(p));
  if (unknown.length > 0) {
    program.error(`bench: unknown part(s) in --only: ${unknown.join(', ')}; the parts are ${names.join(', ')}`, { exitCode: 2 });
  }
  const urls = { databaseUrl: DATABASE_URL, redisUrl: REDIS_URL, mysqlUrl: MYSQL_URL };
  const started = performance.now();
  const report = new Report();
  const out: Record<string, unknown> = { machine: await machineInfo(DATABASE_URL, REDIS_URL, quick) };
  for (const name of names) {
    if (!selected.includes(name)) continue;
    const t = performance.now();
    await PARTS[name]?.({ ...urls, quick, report, out });
    progress(`${name}: ${Math.round((performance.now() - t) / 100) / 10} s`);
  }
  // Every namespace a part made carries this process's id: none is left behind.
  const raw = new Redis(REDIS_URL);
  await deleteMatching(raw, `{bench-*${process.pid}*`).finally(() => raw.disconnect());
  report.printTargets();
  for (const failure of report.failures) process.stderr.write(`bench failure: ${failure}\n`);
  if (report.failures.length > 0) process.exitCode = 1;
  out.targets = report.targets;
  out.failures = report.failures;
  out.durationMs = Math.round(performance.now() - started);
  if (o.json) process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
