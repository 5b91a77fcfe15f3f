import { Command } from 'commander';
import pino from 'pino';
import { Coalescer, count, sum, type RecomputeContext } from '../src';
import { Order, OrderLine } from '../examples/shop/entities';
import { countMismatches, recomputeOrders } from '../examples/shop/recompute';
import { benchDataSource, progress, table } from './util';
import { median, round } from './figure';

export interface AggregatesBenchOptions {
  databaseUrl: string;
  redisUrl: string;
  /** Orders recomputed per round (each with `linesPerOrder` lines). */
  orders: number;
  /** Interleaved rounds of each recompute. */
  rounds: number;
  /** @defaultValue 10 */
  linesPerOrder?: number;
  /** Ids per recomputeMany call, as the drain hands them. @defaultValue 100 */
  batchSize?: number;
}

/** Parents per second over the rounds. */
export interface Throughput {
  median: number;
  min: number;
  max: number;
}

export interface AggregatesBenchResult {
  orders: number;
  lines: number;
  rounds: number;
  batchSize: number;
  declarative: Throughput;
  handWritten: Throughput;
  /** Hand-written median / declarative median (target: at most 1.2). */
  ratio: number;
  /** verify() of every order (all fresh), parents checked per second. */
  verify: Throughput & { batch: number };
  /** Orders whose total or line count differ from their lines after the rounds (must be 0). */
  mismatches: number;
  /** Orders reported drifted by the last verify (must be 0). */
  drifted: number;
}

function stats(perSec: readonly number[]): Throughput {
  return { median: round(median(perSec)), min: round(Math.min(...perSec)), max: round(Math.max(...perSec)) };
}

/**
 * The declarative aggregates (`total: sum(OrderLine, 'qty * unitPrice')`, `lineCount:
 * count(OrderLine)`) against the shop's hand-written `recomputeOrders` on the same ids of the same
 * PostgreSQL tables: batches of `batchSize` ids in turn, rounds interleaved (which goes first
 * alternates), then `verify()` over every order.
 */
export async function benchAggregates(o: AggregatesBenchOptions): Promise<AggregatesBenchResult> {
  const linesPerOrder = o.linesPerOrder ?? 10;
  const batchSize = o.batchSize ?? 100;
  const ds = await benchDataSource(o.databaseUrl, `bench_agg_${process.pid}`, 4);
  const coalescer = new Coalescer({
    dataSource: ds,
    redis: o.redisUrl,
    namespace: `bench-agg-${process.pid}`,
    logger: pino({ level: 'warn' }),
  });
  try {
    coalescer.parent<number>(Order, { aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) } });
    const declared = coalescer.registry.parentOf(Order).recomputeMany;
    if (!declared) throw new Error('aggregates gave no recomputeMany');
    const ctx: RecomputeContext = {
      manager: ds.manager,
      signal: new AbortController().signal,
      attempt: 0,
      fence: 0,
      logger: coalescer.logger,
    };

    progress(`aggregates: seeding ${o.orders} orders with ${linesPerOrder} lines each`);
    const ids = (
      (await ds.query(`INSERT INTO shop_order (customer) SELECT 'c' || g FROM generate_series(1, $1) g RETURNING id`, [
        o.orders,
      ])) as { id: number }[]
    ).map((r) => r.id);
    await ds.query(
      `INSERT INTO shop_order_line (order_id, sku, qty, unit_price)
       SELECT o, 's' || l, 1 + (o + l) % 7, 1.25 + (l % 4) FROM unnest($1::int[]) o, generate_series(1, $2) l`,
      [ids, linesPerOrder],
    );
    await ds.query('ANALYZE shop_order; ANALYZE shop_order_line');
    const batches: number[][] = [];
    for (let i = 0; i < ids.length; i += batchSize) batches.push(ids.slice(i, i + batchSize));
    const runs = {
      declarative: async (batch: number[]) => declared(batch, ctx),
      handWritten: (batch: number[]) => recomputeOrders(ds.manager, batch),
    };
    const pass = async (run: (batch: number[]) => Promise<void>): Promise<number> => {
      const t = performance.now();
      for (const batch of batches) await run(batch);
      return (ids.length / (performance.now() - t)) * 1000;
    };
    // Warm both up (plans, connections, caches) before the clock counts.
    await pass(runs.declarative);
    await pass(runs.handWritten);
    const perSec = { declarative: [] as number[], handWritten: [] as number[] };
    for (let r = 0; r < o.rounds; r += 1) {
      const order = r % 2 === 0 ? (['declarative', 'handWritten'] as const) : (['handWritten', 'declarative'] as const);
      for (const which of order) perSec[which].push(await pass(runs[which]));
      progress(
        `aggregates: round ${r + 1}/${o.rounds}: declarative ${round(perSec.declarative.at(-1) ?? 0)}/s, hand-written ${round(perSec.handWritten.at(-1) ?? 0)}/s`,
      );
    }
    const mismatches = await countMismatches(ds.manager);

    const verifyPerSec: number[] = [];
    let drifted = 0;
    for (let r = 0; r < Math.max(1, Math.min(o.rounds, 3)); r += 1) {
      const v = await coalescer.verify(Order, { batch: 1000 });
      drifted = v.drifted;
      verifyPerSec.push((v.checked / Math.max(1, v.durationMs)) * 1000);
    }
    const declarative = stats(perSec.declarative);
    const handWritten = stats(perSec.handWritten);
    return {
      orders: ids.length,
      lines: ids.length * linesPerOrder,
      rounds: o.rounds,
      batchSize,
      declarative,
      handWritten,
      ratio: round(handWritten.median / declarative.median, 3),
      verify: { ...stats(verifyPerSec), batch: 1000 },
      mismatches,
      drifted,
    };
  } finally {
    await coalescer.reset().catch(() => undefined);
    await coalescer.close();
    await ds.drop();
  }
}

async function main(): Promise<void> {
  const program = new Command('bench-aggregates')
    .description(
      'Declarative aggregates against the hand-written shop recompute (same ids, same tables, interleaved rounds), ' +
        'and verify() throughput, on PostgreSQL. A wrong result (mismatches or drift after the rounds) exits 1.',
    )
    .option('--orders <n>', 'orders (10 lines each)', '10000')
    .option('--rounds <n>', 'interleaved rounds', '7')
    .option('--json', 'print the result as one JSON line')
    .parse();
  const opts = program.opts<{ orders: string; rounds: string; json?: boolean }>();
  const r = await benchAggregates({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    orders: Number(opts.orders),
    rounds: Number(opts.rounds),
  });
  table(
    `aggregates: ${r.orders} orders, ${r.lines} lines, batches of ${r.batchSize}, ${r.rounds} interleaved rounds (parents/s)`,
    [
      { recompute: 'declarative aggregates', ...r.declarative },
      { recompute: 'hand-written recomputeOrders', ...r.handWritten },
      { recompute: `verify (batch ${r.verify.batch})`, median: r.verify.median, min: r.verify.min, max: r.verify.max },
    ],
  );
  process.stdout.write(
    `ratio hand-written / declarative: ${r.ratio} (target <= 1.2); mismatches ${r.mismatches}, drifted ${r.drifted}\n`,
  );
  if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
  if (r.mismatches !== 0 || r.drifted !== 0) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
