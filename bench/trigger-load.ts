import { fork } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { DataSource, type MigrationInterface } from 'typeorm';
import { Coalescer } from '../src';
import { coalesceMigrations } from '../migrations';
import { Order, OrderLine } from '../examples/shop/entities';
import { benchDataSource, progress } from './util';
import { figure, type Figure } from './figure';
import { relayFigures, relayLatency, type RelayFigures } from './relay';
import type { LoadWriterJob, LoadWriterReply } from './load-writer';

export interface TriggerLoadOptions {
  databaseUrl: string;
  redisUrl: string;
  mysqlUrl: string;
  /** Concurrent writers, one connection each. @defaultValue [8, 32] */
  writers?: readonly number[];
  /** Length of one measured run, ms. */
  durationMs: number;
  /** Interleaved rounds; each runs every variant once per writer count. */
  rounds: number;
}

/** Throughput of one variant at one writer count. */
export interface LoadRow {
  writers: number;
  variant: Variant;
  /** Committed inserts per second, over the rounds. */
  txPerSec: Figure;
  /** Over bare's of the same round. */
  ratio: Figure;
  /**
   * Ms from a commit to its mark in Redis while the writers write, sampled every 50 ms on a
   * connection of its own (trigger variants only).
   */
  relay: RelayFigures | null;
}

export interface TriggerLoadResult {
  durationMs: number;
  rounds: number;
  postgres: LoadRow[];
  mariadb: LoadRow[];
}

/**
 * `bare`: no trigger. `triggers`: the generated triggers. `notify`: the same triggers plus a
 * `pg_notify` per writing statement, as the migrations of earlier versions made them.
 */
type Variant = 'bare' | 'triggers' | 'notify';

interface Database {
  name: 'postgres' | 'mariadb';
  variants: readonly Variant[];
  /** Installs `variant` on the lines table. */
  set(variant: Variant): Promise<void>;
  /** The writers' job, but for their number and time. */
  job: Omit<LoadWriterJob, 'writers' | 'durationMs'>;
  /** Inserts a line of `order` through the coalescer's DataSource (the relay sampler's write). */
  insert(order: number): Promise<unknown>;
  /** A new order's id. */
  order(): Promise<number>;
  coalescer: Coalescer;
  close(): Promise<void>;
}

const ORDERS = 1_000;

/**
 * K writers (a process of their own, one connection each) insert lines of random orders through
 * raw SQL, one autocommit statement each, for a fixed time: with no trigger, with the triggers,
 * and (PostgreSQL) with the triggers plus the per-transaction NOTIFY of earlier versions. A
 * notifying transaction takes a database-wide lock at commit, so notifying writers commit one at
 * a time. The coalescer relays the outbox in this process meanwhile, as in production; a sampler
 * times the relay under that load. Variants are interleaved, their order rotating round by round.
 */
export async function benchTriggerLoad(o: TriggerLoadOptions): Promise<TriggerLoadResult> {
  const writers = o.writers ?? [8, 32];
  const redis = new Redis(o.redisUrl);
  const out: TriggerLoadResult = { durationMs: o.durationMs, rounds: o.rounds, postgres: [], mariadb: [] };
  try {
    for (const open of [openPostgres, openMariadb]) {
      const db = await open(o);
      try {
        out[db.name] = await measure(db, redis, writers, o);
      } finally {
        await db.close();
      }
    }
  } finally {
    redis.disconnect();
  }
  return out;
}

async function measure(db: Database, redis: Redis, writerCounts: readonly number[], o: TriggerLoadOptions): Promise<LoadRow[]> {
  const tx = new Map<string, number[]>();
  const ratios = new Map<string, number[]>();
  const relays = new Map<string, number[]>();
  const key = (writers: number, v: Variant): string => `${writers}:${v}`;
  for (let r = 0; r < o.rounds; r += 1) {
    for (const writers of writerCounts) {
      const perSec = new Map<Variant, number>();
      for (let k = 0; k < db.variants.length; k += 1) {
        const variant = db.variants[(r + k) % db.variants.length] as Variant;
        progress(`triggerLoad: ${db.name}, round ${r + 1}/${o.rounds}, ${writers} writers, ${variant}`);
        await db.set(variant);
        const run = await runOnce(db, redis, writers, variant !== 'bare', o.durationMs);
        perSec.set(variant, run.perSec);
        tx.set(key(writers, variant), [...(tx.get(key(writers, variant)) ?? []), run.perSec]);
        relays.set(key(writers, variant), [...(relays.get(key(writers, variant)) ?? []), ...run.relay]);
      }
      for (const [variant, value] of perSec) {
        const bare = perSec.get('bare') ?? 0;
        ratios.set(key(writers, variant), [...(ratios.get(key(writers, variant)) ?? []), bare === 0 ? 0 : value / bare]);
      }
    }
  }
  return writerCounts.flatMap((writers) =>
    db.variants.map((variant) => ({
      writers,
      variant,
      txPerSec: figure(tx.get(key(writers, variant)) ?? []),
      ratio: figure(ratios.get(key(writers, variant)) ?? [], 3),
      relay: variant === 'bare' ? null : relayFigures(relays.get(key(writers, variant)) ?? []),
    })),
  );
}

/**
 * `writers` loops of inserts for `durationMs`, in a process of their own; with `sample`, the
 * relay timed every 50 ms meanwhile from this process, where the coalescer relays.
 */
async function runOnce(
  db: Database,
  redis: Redis,
  writers: number,
  sample: boolean,
  durationMs: number,
): Promise<{ perSec: number; relay: number[] }> {
  const child = fork(join(__dirname, 'load-writer.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const reply = new Promise<LoadWriterReply>((resolve, reject) => {
    child.once('message', (m: LoadWriterReply) => resolve(m));
    child.once('exit', (code) => reject(new Error(`the load writer exited with ${String(code)}`)));
  });
  const job: LoadWriterJob = { ...db.job, writers, durationMs };
  child.send(job);
  const relay: number[] = [];
  let stop = false;
  const sampling = (async () => {
    if (!sample) return;
    while (!stop) {
      // A new order per sample, so its mark appears in Redis only through this commit.
      const id = await db.order();
      relay.push(await relayLatency(redis, db.coalescer.namespace, `Order:${id}`, () => db.insert(id)));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    const { inserts, ms } = await reply;
    return { perSec: Math.round((inserts / ms) * 1000), relay };
  } finally {
    stop = true;
    await sampling;
  }
}

/** The shop on a PostgreSQL schema of the bench's own, its lines captured by triggers. */
async function openPostgres(o: TriggerLoadOptions): Promise<Database> {
  const schema = `bench_trigger_load_${process.pid}`;
  // The shop's migrations include the library's (the outbox).
  const ds = await benchDataSource(o.databaseUrl, schema, 4);
  const coalescer = shop(ds, o.redisUrl);
  const { up } = coalescer.triggerStatements();
  for (const sql of up) await ds.query(sql);
  const [fn] = up as [string];
  // What earlier versions installed: the same rows, then a NOTIFY in the writing transaction.
  const notifying = fn.replace(
    '  RETURN NULL;',
    `  PERFORM pg_notify('coalesce_outbox', '${coalescer.namespace}');\n  RETURN NULL;`,
  );
  await coalescer.attach();
  const orders = await seed(ds);
  return {
    name: 'postgres',
    variants: ['bare', 'triggers', 'notify'],
    job: { database: 'postgres', url: o.databaseUrl, schema, orders },
    insert: (order) =>
      ds.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES ($1, 'r', 1, 1.00)`, [order]),
    order: async () => (await ds.getRepository(Order).save({ customer: 'relay' })).id,
    coalescer,
    async set(variant) {
      await ds.query(`ALTER TABLE shop_order_line ${variant === 'bare' ? 'DISABLE' : 'ENABLE'} TRIGGER USER`);
      await ds.query(variant === 'notify' ? notifying : fn);
    },
    async close() {
      await coalescer.reset().catch(() => undefined);
      await coalescer.close();
      await ds.drop();
    },
  };
}

/** The shop on a MariaDB database of the bench's own, its lines captured by row triggers. */
async function openMariadb(o: TriggerLoadOptions): Promise<Database> {
  const database = `bench_trigger_load_${process.pid}`;
  const admin = await createConnection(o.mysqlUrl);
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.end();
  const url = new URL(o.mysqlUrl);
  url.pathname = `/${database}`;
  const ds = new DataSource({
    type: 'mariadb',
    url: url.toString(),
    entities: [Order, OrderLine],
    synchronize: true,
    migrations: coalesceMigrations,
    migrationsRun: true,
    poolSize: 4,
  });
  await ds.initialize();
  const coalescer = shop(ds, o.redisUrl);
  const migration: new () => MigrationInterface = coalescer.triggerMigration();
  const run = async (direction: 'up' | 'down'): Promise<void> => {
    const qr = ds.createQueryRunner();
    try {
      await new migration()[direction](qr);
    } finally {
      await qr.release();
    }
  };
  await coalescer.attach();
  const orders = await seed(ds);
  return {
    name: 'mariadb',
    variants: ['bare', 'triggers'],
    job: { database: 'mariadb', url: url.toString(), orders },
    insert: (order) => ds.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'r', 1, 1.00)`, [order]),
    order: async () => (await ds.getRepository(Order).save({ customer: 'relay' })).id,
    coalescer,
    set: (variant) => run(variant === 'bare' ? 'down' : 'up'),
    async close() {
      await coalescer.reset().catch(() => undefined);
      await coalescer.close();
      await ds.query(`DROP DATABASE \`${database}\``);
      await ds.destroy();
    },
  };
}

/** The shop's lines captured by triggers; nothing is drained here, so recomputes do nothing. */
function shop(ds: DataSource, redisUrl: string): Coalescer {
  const c = new Coalescer({ dataSource: ds, redis: redisUrl, namespace: `bench-trigger-load-${process.pid}` });
  c.parent<number>(Order, { recompute: async () => undefined });
  c.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture: 'triggers' });
  return c;
}

async function seed(ds: DataSource): Promise<number[]> {
  const saved = await ds.getRepository(Order).save(Array.from({ length: ORDERS }, () => ({ customer: 'load' })));
  return saved.map((o) => o.id);
}

// `node dist/bench/trigger-load.js [durationMs] [rounds]` runs it alone and prints the figures as JSON.
if (require.main === module) {
  benchTriggerLoad({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    mysqlUrl: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test',
    durationMs: Number(process.argv[2] ?? 5_000),
    rounds: Number(process.argv[3] ?? 3),
  }).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    (error: unknown) => {
      process.stderr.write(`bench triggerLoad: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
