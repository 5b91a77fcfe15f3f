import 'reflect-metadata';
import { DataSource } from 'typeorm';
import type { Redis } from 'ioredis';
import { Order, OrderLine } from '../examples/shop/entities';
import { migrations } from '../examples/shop/migrations';
import { keysFor } from '../src/redis/keys';

/** Progress to stderr, so stdout keeps the tables and the JSON line. */
export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Prints rows as an aligned table. */
export function table(title: string, rows: Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0] as object);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(width[i] as number)).join('  ');
  process.stdout.write(`\n${title}\n${line(cols)}\n${line(width.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => String(r[c])))}\n`);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates `schema` empty (dropping one left by an earlier run). */
export async function freshSchema(url: string, schema: string): Promise<void> {
  const admin = new DataSource({ type: 'postgres', url });
  await admin.initialize();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.destroy();
}

/** A DataSource on a fresh schema of the bench's own, with the shop tables; `drop()` removes it. */
export async function benchDataSource(
  url: string,
  schema: string,
  poolSize = 10,
): Promise<DataSource & { drop(): Promise<void> }> {
  await freshSchema(url, schema);
  const ds = await shopDataSource(url, schema, poolSize, true);
  return Object.assign(ds, {
    async drop() {
      if (ds.isInitialized) {
        await ds.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await ds.destroy();
      }
    },
  });
}

/**
 * A DataSource on the shop tables of `schema`: made by `benchDataSource` (`migrate` runs the
 * shop's migrations), or opened by another process of the bench on a schema that exists.
 */
export async function shopDataSource(url: string, schema: string, poolSize: number, migrate = false): Promise<DataSource> {
  const ds = new DataSource({
    type: 'postgres',
    url,
    schema,
    entities: [Order, OrderLine],
    migrations,
    migrationsRun: migrate,
    logging: false,
    extra: { options: `-c search_path=${schema}`, max: poolSize },
  });
  await ds.initialize();
  return ds;
}

/**
 * Deletes every key of `namespace` (all share the hash tag `{namespace}`), so a run leaves
 * nothing behind in Redis whatever keys the product keeps. Returns how many were deleted.
 */
export async function clearNamespace(redis: Redis, namespace: string): Promise<number> {
  // What makes a namespace itself stays: without the epoch and the fence counter the next drain
  // would take the emptied namespace for a Redis data loss and rebuild every parent type, and
  // without the policies the drain would run on defaults until the next attach().
  // coalescer.reset() is the way to start afresh for good; dropNamespace() ends a run.
  const k = keysFor(namespace);
  return deleteMatching(redis, `{${namespace}}*`, [k.epoch, k.fence, k.policy, k.settingsWarned]);
}

/** Deletes every key of the namespace, the epoch and fence counter included (the end of a run). */
export function dropNamespace(redis: Redis, namespace: string): Promise<number> {
  return deleteMatching(redis, `{${namespace}}*`);
}

/** Deletes every key matching the glob `pattern` (SCAN, never KEYS); returns how many. */
export async function deleteMatching(redis: Redis, pattern: string, keep: readonly string[] = []): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    const keys = found.filter((k) => !keep.includes(k));
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}
