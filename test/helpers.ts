import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { DataSource, type DataSourceOptions, type EntitySchema } from 'typeorm';
import { Redis } from 'ioredis';
import pino, { type Logger } from 'pino';
import { inject } from 'vitest';
import { Coalescer, type CoalescerOptions } from '../src';
import type { Parts } from '../src/assemble';
import { Claims } from '../src/redis/claims';
import { Order, OrderLine } from '../examples/shop/entities';
import { recomputeOrders, countMismatches } from '../examples/shop/recompute';
import { migrations } from '../examples/shop/migrations';

export { Order, OrderLine, recomputeOrders, countMismatches };

export const databaseUrl = (): string => inject('databaseUrl');
export const redisUrl = (): string => inject('redisUrl');
export const mysqlUrl = (): string => inject('mysqlUrl');

/** The databases the suite runs against; tests that hold for both loop over this. */
export const DIALECTS = ['postgres', 'mariadb'] as const;
export type Dialect = (typeof DIALECTS)[number];

/** A short random suffix for schemas and namespaces, so test files never share state. */
export function suffix(): string {
  return randomBytes(4).toString('hex');
}

/** Logger for tests: silent unless TEST_LOG_LEVEL is set. */
export function testLogger(): Logger {
  return pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
}

export interface TestDb {
  dataSource: DataSource;
  /** The PostgreSQL schema, or the MySQL/MariaDB database, the test owns. */
  schema: string;
  dialect: Dialect;
  /** Drops the schema (database) and closes the DataSource. */
  destroy(): Promise<void>;
}

/**
 * A DataSource on a schema of its own (on MySQL/MariaDB, a database of its own). By default the
 * shop tables are made by the project's migrations on PostgreSQL and by synchronize on
 * MySQL/MariaDB; give `entities` (with `synchronize`) for other test entities.
 */
export async function createTestDb(
  name: string,
  options: {
    entities?: (Function | EntitySchema)[];
    synchronize?: boolean;
    poolSize?: number;
    dialect?: Dialect;
    /** Extra migrations to run after the schema is made (the outbox's, say). */
    migrations?: DataSourceOptions['migrations'];
  } = {},
): Promise<TestDb> {
  const dialect = options.dialect ?? 'postgres';
  const schema = `t_${name.replace(/\W/g, '_').toLowerCase()}_${suffix()}`;
  const entities = options.entities ?? [Order, OrderLine];
  if (dialect === 'mariadb') {
    const admin = new DataSource({ type: 'mariadb', url: mysqlUrl() });
    await admin.initialize();
    await admin.query(`CREATE DATABASE \`${schema}\``);
    await admin.destroy();
    const url = new URL(mysqlUrl());
    url.pathname = `/${schema}`;
    const extra = options.migrations ?? [];
    const dataSource = new DataSource({
      type: 'mariadb',
      url: url.toString(),
      entities,
      synchronize: options.synchronize ?? true,
      migrations: extra,
      migrationsRun: (extra as unknown[]).length > 0,
      logging: false,
      poolSize: options.poolSize ?? 10,
    });
    await dataSource.initialize();
    return {
      dataSource,
      schema,
      dialect,
      async destroy() {
        if (dataSource.isInitialized) {
          await dataSource.query(`DROP DATABASE \`${schema}\``);
          await dataSource.destroy();
        }
      },
    };
  }
  const admin = new DataSource({ type: 'postgres', url: databaseUrl() });
  await admin.initialize();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.destroy();
  const synchronize = options.synchronize ?? options.entities !== undefined;
  const dsOptions: DataSourceOptions = {
    type: 'postgres',
    url: databaseUrl(),
    schema,
    entities,
    migrations: synchronize ? (options.migrations ?? []) : [...migrations, ...((options.migrations as Function[]) ?? [])],
    migrationsRun: !synchronize || options.migrations !== undefined,
    synchronize,
    logging: false,
    extra: { options: `-c search_path=${schema}`, max: options.poolSize ?? 10 },
  };
  const dataSource = new DataSource(dsOptions);
  await dataSource.initialize();
  return {
    dataSource,
    schema,
    dialect,
    async destroy() {
      if (dataSource.isInitialized) {
        await dataSource.query(`DROP SCHEMA "${schema}" CASCADE`);
        await dataSource.destroy();
      }
    },
  };
}

/** Counts of recomputes per order id, for the "exactly once" guarantees. */
export class RecomputeLog {
  readonly counts = new Map<number, number>();
  total = 0;
  record(ids: readonly number[]): void {
    for (const id of ids) {
      this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
      this.total += 1;
    }
  }
  of(id: number): number {
    return this.counts.get(id) ?? 0;
  }
}

/**
 * A Coalescer for the shop entities on a fresh namespace, recording every recompute. Pass
 * `recompute` to wrap the real one (delays, failures).
 */
export function shopCoalescer(
  dataSource: DataSource,
  options: Partial<CoalescerOptions> & {
    log?: RecomputeLog;
    many?: boolean;
    before?: (ids: readonly number[]) => Promise<void> | void;
  } = {},
): Coalescer {
  const { log, many, before, ...rest } = options;
  const coalescer = new Coalescer({
    dataSource,
    redis: redisUrl(),
    namespace: `test-${suffix()}`,
    logger: testLogger(),
    ...rest,
  });
  const run = async (ids: number[], manager: DataSource['manager']): Promise<void> => {
    await before?.(ids);
    await recomputeOrders(manager, ids);
    log?.record(ids);
  };
  coalescer.parent<number>(Order, {
    recompute: (id, { manager }) => run([id], manager),
    ...(many ? { recomputeMany: (ids: number[], { manager }: { manager: DataSource['manager'] }) => run(ids, manager) } : {}),
  });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  return coalescer;
}

/** The parts a coalescer was built from (its Redis slices, drainer...), for tests that reach below the facade. */
export function internals(coalescer: Coalescer): Parts {
  return (coalescer as unknown as { parts: Parts }).parts;
}

/** Closes a coalescer after deleting every key of its namespace. */
export async function dispose(coalescer: Coalescer): Promise<void> {
  await internals(coalescer).epochs.clear();
  await coalescer.close();
}

/** Disposes every coalescer in `list` (see {@link dispose}); for afterAll. */
export async function disposeAll(list: readonly Coalescer[]): Promise<void> {
  for (const c of list) await dispose(c);
}

/** A plain Redis client on the test server; close it with `quit()`. */
export function redisClient(): Redis {
  return new Redis(redisUrl());
}

/**
 * Records the commands Redis receives that touch `namespace` (via MONITOR, on a raw socket)
 * while `fn` runs, one line each. Commands run inside scripts are left out: their number is the
 * number of round trips made for `namespace`.
 */
export async function monitorNamespace(namespace: string, fn: () => Promise<void>): Promise<string[]> {
  const url = new URL(redisUrl());
  const socket = createConnection({ host: url.hostname, port: Number(url.port || 6379) });
  const lines: string[] = [];
  let buffer = '';
  let ready: () => void = () => undefined;
  const monitoring = new Promise<void>((resolve) => (ready = resolve));
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let at: number;
    while ((at = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (line === '+OK') ready();
      else lines.push(line);
    }
  });
  socket.write('MONITOR\r\n');
  await monitoring;
  const marker = `coalesce-monitor-end-${suffix()}`;
  try {
    await fn();
  } finally {
    // Everything sent before this ECHO is on the monitor stream once the ECHO is.
    const client = redisClient();
    await client.echo(marker);
    client.disconnect();
    const until = Date.now() + 5000;
    while (!lines.some((l) => l.includes(marker)) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    socket.destroy();
  }
  const tag = `{${namespace}}`;
  // A line looks like: +1700000000.123456 [0 127.0.0.1:5000] "evalsha" "..." (scripts show "[0 lua]").
  return lines.filter((l) => l.includes(tag) && !/^\+[\d.]+ \[\d+ lua\]/.test(l));
}

/** Seeds `n` orders each with `lines` lines straight in SQL (no marks); returns their ids. */
export async function seedOrders(dataSource: DataSource, n: number, lines = 1): Promise<number[]> {
  const rows = (await dataSource.query(
    `INSERT INTO shop_order (customer) SELECT 'c' || g FROM generate_series(1, $1) g RETURNING id`,
    [n],
  )) as { id: number }[];
  const ids = rows.map((r) => r.id);
  if (lines > 0) {
    await dataSource.query(
      `INSERT INTO shop_order_line (order_id, sku, qty, unit_price)
       SELECT o, 's' || l, 1 + (o + l) % 5, 2.50 FROM unnest($1::int[]) o, generate_series(1, $2) l`,
      [ids, lines],
    );
  }
  return ids;
}

export { waitFor } from './wait';

/** A claim taken by {@link crashedClaims}: what a worker that died before its ack leaves behind. */
export interface CrashedClaim {
  key: Buffer;
  member: string;
  token: string;
}

/**
 * Claims the `n` hottest parents the way a worker does, then never renews nor acknowledges them
 * (a worker killed mid-recompute). Their leases expire after `leaseMs`.
 */
export async function crashedClaims(coalescer: Coalescer, n: number, leaseMs: number): Promise<CrashedClaim[]> {
  await coalescer.clock.sync();
  const claims = new Claims({ client: internals(coalescer).clients.main, keys: coalescer.keys });
  const { top } = await claims.readWindow(coalescer.clock.now(), n, 0);
  const { token, won } = await claims.claim(top, coalescer.clock.now() + leaseMs);
  return won.map((w) => {
    const key = (top[w.index] as { key: Buffer }).key;
    return { key, member: key.toString(), token };
  });
}

/** The installed TypeORM's version (CI runs the suite on 1.x and on 0.3). */
export function typeormVersion(): string {
  let dir = dirname(require.resolve('typeorm'));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}
