import 'reflect-metadata';
import { Command, InvalidArgumentError } from 'commander';
import { DataSource } from 'typeorm';
import { Order, OrderLine } from './entities';
import { countMismatches } from './recompute';
import { REDIS_URL, shopCoalescer } from './app';
import { DATABASE_URL } from '../../ormconfig';
import { migrations } from './migrations';
import type { Coalescer } from '../../src';

const HOW_TO_START =
  'start PostgreSQL and Redis (Debian: `pg_ctlcluster 15 main start` and `redis-server --daemonize yes`; with Docker: `docker compose up -d`) or set DATABASE_URL / REDIS_URL';

interface Summary {
  saves: number;
  marks: number;
  recomputes: number;
  orders: number;
  mismatches: number;
  lines: number;
  lostRaces: number;
  drainMs: number;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number >= 1, got "${value}"`);
  return n;
}

/** A deterministic pseudo-random source, so two runs of the demo do the same work. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function main(): Promise<void> {
  const program = new Command('demo')
    .description(
      'Saves orders with many inline lines as an admin form would, edits, moves and deletes lines, drains once, and checks every order against its lines.',
    )
    .option('--orders <n>', 'orders to create', positiveInt, 200)
    .option('--edits <n>', 'line edits after the orders are created', positiveInt, 2000)
    .option('--concurrency <n>', 'recomputes run at once while draining', positiveInt, 4)
    .option('--json', 'print the summary as one JSON object on the last line')
    .addHelpText(
      'after',
      `\nEnvironment: DATABASE_URL (default ${DATABASE_URL}), REDIS_URL (default ${REDIS_URL}).\nExit code: 0 when every order matches its lines, 1 on a mismatch, 2 when a service is unreachable.`,
    )
    .parse();
  const opts = program.opts<{ orders: number; edits: number; concurrency: number; json?: boolean }>();
  const say = (line: string): void => {
    if (!opts.json) console.log(line);
  };

  const dataSource = new DataSource({
    type: 'postgres',
    url: DATABASE_URL,
    entities: [Order, OrderLine],
    migrations,
    logging: false,
  });
  try {
    await dataSource.initialize();
  } catch (error) {
    fail(`cannot reach PostgreSQL at ${redact(DATABASE_URL)}: ${(error as Error).message}; ${HOW_TO_START}`);
  }
  const coalescer = shopCoalescer(dataSource, { namespace: 'shop-demo' });
  try {
    await coalescer.ping();
  } catch (error) {
    await dataSource.destroy();
    await coalescer.close();
    fail(`${(error as Error).message} (${redact(REDIS_URL)}); ${HOW_TO_START}`);
  }
  try {
    const ran = await dataSource.runMigrations();
    if (ran.length > 0) say(`migrations run: ${ran.map((m) => m.name).join(', ')}`);
    await coalescer.reset();
    await dataSource.query(`TRUNCATE shop_order_line, shop_order RESTART IDENTITY`);
    await coalescer.attach();
    const summary = await simulate(dataSource, coalescer, opts, say);
    if (opts.json) console.log(JSON.stringify(summary));
    process.exitCode = summary.mismatches === 0 ? 0 : 1;
  } finally {
    await coalescer.close();
    await dataSource.destroy();
  }
}

async function simulate(
  dataSource: DataSource,
  coalescer: Coalescer,
  opts: { orders: number; edits: number; concurrency: number },
  say: (line: string) => void,
): Promise<Summary> {
  const random = rng(42);
  const pick = (n: number): number => Math.floor(random() * n);
  const orders = dataSource.getRepository(Order);
  const lines = dataSource.getRepository(OrderLine);
  let saves = 0;

  say(`creating ${opts.orders} orders, each saved with its inline lines in one transaction...`);
  const orderIds: number[] = [];
  for (let i = 0; i < opts.orders; i += 1) {
    await dataSource.transaction(async (manager) => {
      const order = await manager.save(manager.create(Order, { customer: `customer-${i}` }));
      orderIds.push(order.id);
      const count = 1 + pick(30);
      const batch = Array.from({ length: count }, (_, n) =>
        manager.create(OrderLine, {
          orderId: order.id,
          sku: `sku-${n}`,
          qty: 1 + pick(9),
          unitPrice: (1 + pick(9999) / 100).toFixed(2),
        }),
      );
      await manager.save(batch);
      saves += count;
    });
  }

  say(`editing lines ${opts.edits} times (qty changes, moves to another order, deletes, soft deletes, restores)...`);
  const ids = (await lines.find({ select: { id: true } })).map((l) => l.id);
  for (let i = 0; i < opts.edits && ids.length > 0; i += 1) {
    const id = ids[pick(ids.length)] as number;
    const kind = pick(10);
    if (kind < 5) {
      // A partial save: the form sends only the changed field.
      await lines.save({ id, qty: 1 + pick(20) });
    } else if (kind < 7) {
      // update() is a bulk path: the subscriber sees the new order but not the old one, so the
      // form marks the old one explicitly, as the README tells hosts to.
      const line = await lines.findOneBy({ id });
      if (!line) continue;
      await lines.update({ id }, { orderId: orderIds[pick(orderIds.length)] as number });
      await coalescer.mark(Order, line.orderId);
    } else if (kind < 8) {
      const line = await lines.findOneBy({ id });
      if (!line) continue;
      line.orderId = orderIds[pick(orderIds.length)] as number;
      await lines.save(line);
    } else if (kind < 9) {
      const line = await lines.findOneBy({ id });
      if (!line) continue;
      await lines.remove(line);
      ids.splice(ids.indexOf(id), 1);
    } else {
      const line = await lines.findOne({ where: { id }, withDeleted: true });
      if (!line) continue;
      if (line.deletedAt) await lines.recover(line);
      else await lines.softRemove(line);
    }
    saves += 1;
  }

  await coalescer.flushed();
  const before = await coalescer.stats();
  say(`${saves} child saves left ${before.pending} orders pending; draining with concurrency ${opts.concurrency}...`);
  const tty = process.stdout.isTTY && !process.env.CI;
  const result = await coalescer.drain({
    concurrency: opts.concurrency,
    onProgress: (p) => {
      if (tty)
        process.stdout.write(
          `\r  claimed ${p.claimed}/${p.pendingAtStart}  recomputed ${p.recomputed}  lost races ${p.lostRaces}   `,
        );
    },
  });
  if (tty) process.stdout.write('\n');
  const mismatches = await countMismatches(dataSource.manager);
  const after = await coalescer.stats();
  const summary: Summary = {
    saves,
    marks: after.marker.marks,
    recomputes: result.recomputed,
    orders: await orders.count(),
    mismatches,
    lines: await lines.count(),
    lostRaces: result.lostRaces,
    drainMs: result.durationMs,
  };
  say('');
  say(`saves       ${summary.saves}   child rows inserted, updated, moved, deleted`);
  say(`marks       ${summary.marks}   parent marks sent to Redis (one per parent per transaction)`);
  say(`recomputes  ${summary.recomputes}   orders recomputed by the drain (${summary.drainMs} ms)`);
  say(`orders      ${summary.orders}`);
  say(`mismatches  ${summary.mismatches}   orders whose total or line count differ from their lines`);
  say(summary.mismatches === 0 ? 'OK: every order matches its lines.' : 'FAIL: some orders are stale.');
  return summary;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

function fail(message: string): never {
  console.error(`demo: ${message}`);
  process.exit(2);
}

main().catch((error: unknown) => {
  console.error(`demo: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
