import 'reflect-metadata';
import { Command, InvalidArgumentError } from 'commander';
import { Customer, Order, OrderLine } from './entities';
import { DEFAULT_REDIS_URL, shopCoalescer } from './app';
import { DATABASE_URL, DEFAULT_DATABASE_URL, dataSource, driverOf } from '../../ormconfig';
import { humanLogger, type Coalescer } from '../../src';

const HOW_TO_START =
  'start PostgreSQL and Redis (Debian: `pg_ctlcluster 15 main start` and `redis-server --daemonize yes`; with Docker: `docker compose up -d`) or set DATABASE_URL / REDIS_URL';

interface Summary {
  database: string;
  saves: number;
  marks: number;
  recomputes: number;
  customers: number;
  orders: number;
  lines: number;
  /** Parents whose stored derived fields differ from what their children give, per verify(). */
  mismatches: number;
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
      'Saves orders with many inline lines as an admin form would, edits, moves and deletes lines, moves orders between customers, ' +
        'drains once, and verifies every order against its lines and every customer against its orders.',
    )
    .option('--customers <n>', 'customers to create', positiveInt, 20)
    .option('--orders <n>', 'orders to create', positiveInt, 200)
    .option('--edits <n>', 'edits after the orders are created', positiveInt, 2000)
    .option('--concurrency <n>', 'recomputes run at once while draining', positiveInt, 4)
    .option('--json', 'print the summary as one JSON object on the last line (and log as JSON)')
    .addHelpText(
      'after',
      `\nEnvironment: DATABASE_URL (default ${DEFAULT_DATABASE_URL}; a mysql:// URL runs it on MySQL/MariaDB), REDIS_URL (default ${DEFAULT_REDIS_URL}).\n` +
        'Exit code: 0 when every order and customer matches, 1 on a mismatch, 2 when a service is unreachable.',
    )
    .parse();
  const opts = program.opts<{ customers: number; orders: number; edits: number; concurrency: number; json?: boolean }>();
  const say = (line: string): void => {
    if (!opts.json) console.log(line);
  };
  const database = driverOf(DATABASE_URL);
  try {
    await dataSource.initialize();
  } catch (error) {
    fail(`cannot reach ${database} at ${redact(DATABASE_URL)}: ${(error as Error).message}; ${HOW_TO_START}`);
  }
  const coalescer = shopCoalescer(dataSource, {
    // The namespace of examples/shop/app.ts, which the CLI loads: `coalesce status` after the demo shows it.
    namespace: 'shop',
    ...(opts.json ? {} : { logger: humanLogger('demo') }),
  });
  try {
    await coalescer.ping();
  } catch (error) {
    await dataSource.destroy();
    await coalescer.close();
    fail(`${(error as Error).message}; ${HOW_TO_START}`);
  }
  try {
    const ran = await dataSource.runMigrations();
    if (ran.length > 0) say(`migrations run: ${ran.map((m) => m.name).join(', ')}`);
    await coalescer.reset();
    // A fresh shop each run (no subscriber attached yet: nothing to mark).
    for (const entity of [OrderLine, Order, Customer]) await dataSource.createQueryBuilder().delete().from(entity).execute();
    await coalescer.attach();
    const summary = await simulate(coalescer, opts, say, database);
    if (opts.json) console.log(JSON.stringify(summary));
    process.exitCode = summary.mismatches === 0 ? 0 : 1;
  } finally {
    await coalescer.close();
    await dataSource.destroy();
  }
}

async function simulate(
  coalescer: Coalescer,
  opts: { customers: number; orders: number; edits: number; concurrency: number },
  say: (line: string) => void,
  database: string,
): Promise<Summary> {
  const random = rng(42);
  const pick = (n: number): number => Math.floor(random() * n);
  const customers = dataSource.getRepository(Customer);
  const orders = dataSource.getRepository(Order);
  const lines = dataSource.getRepository(OrderLine);
  let saves = 0;

  say(`creating ${opts.customers} customers and ${opts.orders} orders, each saved with its inline lines in one transaction...`);
  const customerIds = (
    await customers.save(Array.from({ length: opts.customers }, (_, i) => customers.create({ name: `customer-${i}` })))
  ).map((c) => c.id);
  const orderIds: number[] = [];
  for (let i = 0; i < opts.orders; i += 1) {
    await dataSource.transaction(async (manager) => {
      const customerId = customerIds[pick(customerIds.length)] as number;
      const order = await manager.save(manager.create(Order, { customer: `customer-${customerId}`, customerId }));
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

  say(
    `editing ${opts.edits} times (qty changes, lines moved, deleted, soft-deleted, restored, orders moved to another customer)...`,
  );
  const ids = (await lines.find({ select: { id: true } })).map((l) => l.id);
  for (let i = 0; i < opts.edits && ids.length > 0; i += 1) {
    const id = ids[pick(ids.length)] as number;
    const kind = pick(20);
    if (kind < 9) {
      // A partial save: the form sends only the changed field.
      await lines.save({ id, qty: 1 + pick(20) });
    } else if (kind < 12) {
      // A bulk path: the subscriber reads the rows before the UPDATE, so both orders are marked.
      await lines.update({ id }, { orderId: orderIds[pick(orderIds.length)] as number });
    } else if (kind < 14) {
      const line = await lines.findOneBy({ id });
      if (!line) continue;
      line.orderId = orderIds[pick(orderIds.length)] as number;
      await lines.save(line);
    } else if (kind < 16) {
      const line = await lines.findOneBy({ id });
      if (!line) continue;
      await lines.remove(line);
      ids.splice(ids.indexOf(id), 1);
    } else if (kind < 18) {
      const line = await lines.findOne({ where: { id }, withDeleted: true });
      if (!line) continue;
      if (line.deletedAt) await lines.recover(line);
      else await lines.softRemove(line);
    } else {
      // An order moved to another customer: both customers are marked.
      await orders.save({
        id: orderIds[pick(orderIds.length)] as number,
        customerId: customerIds[pick(customerIds.length)] as number,
      });
    }
    saves += 1;
  }

  await coalescer.flushed();
  const before = await coalescer.stats();
  say(`${saves} saves left ${before.pending} parents pending; draining with concurrency ${opts.concurrency}...`);
  const tty = process.stdout.isTTY && !process.env.CI;
  const result = await coalescer.drain({
    concurrency: opts.concurrency,
    onProgress: (p) => {
      if (tty) process.stdout.write(`\r  claimed ${p.claimed}  recomputed ${p.recomputed}  lost races ${p.lostRaces}   `);
    },
  });
  if (tty) process.stdout.write('\n');
  say('verifying every order against its lines and every customer against its orders...');
  const verified = [await coalescer.verify(Order), await coalescer.verify(Customer)];
  const after = await coalescer.stats();
  const summary: Summary = {
    database,
    saves,
    marks: after.marker.marks,
    recomputes: result.recomputed,
    customers: await customers.count(),
    orders: await orders.count(),
    lines: await lines.count(),
    mismatches: verified.reduce((n, v) => n + v.drifted, 0),
    lostRaces: result.lostRaces,
    drainMs: result.durationMs,
  };
  say('');
  say(`database    ${summary.database}`);
  say(`saves       ${summary.saves}   child rows inserted, updated, moved, deleted; orders moved`);
  say(`marks       ${summary.marks}   parent marks sent to Redis (one per parent per transaction)`);
  say(`recomputes  ${summary.recomputes}   orders and customers recomputed by the drain (${summary.drainMs} ms)`);
  say(`customers   ${summary.customers}`);
  say(`orders      ${summary.orders}`);
  say(`mismatches  ${summary.mismatches}   parents whose derived fields differ from their children (verify)`);
  say(
    summary.mismatches === 0 ? 'OK: every order matches its lines, every customer its orders.' : 'FAIL: some parents are stale.',
  );
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
