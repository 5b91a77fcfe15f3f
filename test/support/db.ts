import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DataSource, type DataSourceOptions, type EntitySchema } from 'typeorm';
import pino, { type Logger } from 'pino';
import { inject } from 'vitest';
import { Order, OrderLine } from '../../examples/shop/entities';
import { migrations } from '../../examples/shop/migrations';

// The databases of the suite: URLs from the global setup, a schema (or MariaDB database) of its
// own per test file, seeds, and what each test needs to know about the installed TypeORM.

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
    return testDb(dataSource, schema, dialect, `DROP DATABASE \`${schema}\``);
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
  return testDb(dataSource, schema, dialect, `DROP SCHEMA "${schema}" CASCADE`);
}

/** A TestDb whose destroy() runs `drop` (its schema or database) and closes the DataSource. */
function testDb(dataSource: DataSource, schema: string, dialect: Dialect, drop: string): TestDb {
  return {
    dataSource,
    schema,
    dialect,
    async destroy() {
      if (dataSource.isInitialized) {
        await dataSource.query(drop);
        await dataSource.destroy();
      }
    },
  };
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

/** The installed TypeORM's version (CI runs the suite on 1.x and on 0.3). */
export function typeormVersion(): string {
  let dir = dirname(require.resolve('typeorm'));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}
