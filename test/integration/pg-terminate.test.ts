import { spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataSource } from 'typeorm';
import type { Pool, PoolClient } from 'pg';
import { guardPostgresPool, humanLogger, type Coalescer } from '../../src';
import {
  countMismatches,
  createTestDb,
  databaseUrl,
  dispose,
  mysqlUrl,
  Order,
  redisClient,
  redisUrl,
  seedOrders,
  shopCoalescer,
  suffix,
  waitFor,
  type TestDb,
} from '../support';

const root = join(__dirname, '..', '..');
const PARENTS = 3_000;
// pg_terminate_backend every 100 ms for 3 s.
const STORM_TICKS = 30;
const TICK_MS = 100;
/** Parents whose lines change (and which are marked again) at each tick of the storm. */
const CHANGED_PER_TICK = 50;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Members held in each per-parent set and hash of the namespace (bookkeeping keys left out). */
async function heldMembers(c: Coalescer): Promise<Record<string, number>> {
  const k = c.keys;
  const names = ['pending', 'since', 'leases', 'claims', 'dirty', 'dirtyAt', 'delayed', 'attempts', 'dead', 'deadInfo'] as const;
  const more = ['due', 'settling', 'settleHeat', 'generations', 'ackedGens'] as const;
  const raw = redisClient();
  try {
    const held: Record<string, number> = {};
    for (const name of [...names, ...more]) {
      const key = k[name];
      const type = await raw.type(key);
      held[name] = type === 'zset' ? await raw.zcard(key) : type === 'hash' ? await raw.hlen(key) : 0;
    }
    return held;
  } finally {
    raw.disconnect();
  }
}

describe('PostgreSQL backends terminated while a drainer process recomputes', () => {
  let db: TestDb;
  const closing: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    db = await createTestDb('pgterm');
  });
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
    await db.destroy();
  });

  it('the drainer survives pg_terminate_backend every 100 ms for 3 s; every parent converges, nothing is left in Redis', async () => {
    const c = shopCoalescer(db.dataSource);
    closing.push(() => dispose(c));
    const ids = await seedOrders(db.dataSource, PARENTS, 2);
    await c.mark(Order, ids);

    const app = `coalesce-pgterm-${suffix()}`;
    const proc = spawn(process.execPath, [join(root, 'test', 'fixtures', 'pg-terminate-drainer.cjs')], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl(),
        REDIS_URL: redisUrl(),
        TEST_SCHEMA: db.schema,
        TEST_NAMESPACE: c.namespace,
        APP_NAME: app,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    closing.push(async () => proc.kill('SIGKILL'));
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.on('exit', (code, signal) => resolve({ code, signal })),
    );
    const alive = (): boolean => proc.exitCode === null && proc.signalCode === null;
    await waitFor(async () => !alive() || (await c.stats()).pending < PARENTS, 'the drainer to be draining');
    expect(alive(), `the drainer did not start:\n${out}`).toBe(true);

    // The storm: every backend of the drainer is terminated, while lines keep changing.
    let terminated = 0;
    for (let tick = 0; tick < STORM_TICKS && alive(); tick += 1) {
      const [row] = (await db.dataSource.query(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1`,
        [app],
      )) as { n: number }[];
      terminated += row?.n ?? 0;
      const changed = ids.slice((tick * CHANGED_PER_TICK) % PARENTS, ((tick + 1) * CHANGED_PER_TICK) % PARENTS || PARENTS);
      await db.dataSource.query(`UPDATE shop_order_line SET qty = qty + 1 WHERE order_id = ANY($1::int[])`, [changed]);
      await c.mark(Order, changed);
      await sleep(TICK_MS);
    }
    expect(alive(), `the drainer died during the storm:\n${out}`).toBe(true);
    expect(terminated).toBeGreaterThan(0);

    // The same process catches up: failed recomputes are retried, nothing is dead-lettered.
    await waitFor(
      async () => {
        if (!alive()) return true;
        const s = await c.stats();
        return s.pending + s.inflight + s.delayed + s.settling + s.dead === 0;
      },
      'the drainer to recompute every parent',
      30_000,
    );
    expect(alive(), `the drainer died after the storm:\n${out}`).toBe(true);
    proc.kill('SIGTERM');
    expect(await exited, out).toEqual({ code: 0, signal: null });
    const totals = JSON.parse(/stopped (.*)/.exec(out)?.[1] ?? 'null') as { recomputed: number; failed: number } | null;
    expect(totals, out).not.toBeNull();
    // The storm broke recomputes, and they were done again.
    expect(totals?.failed, out).toBeGreaterThan(0);
    expect(totals?.recomputed).toBeGreaterThanOrEqual(PARENTS);

    expect(await countMismatches(db.dataSource.manager)).toBe(0);
    const held = await heldMembers(c);
    expect(held).toEqual(Object.fromEntries(Object.keys(held).map((name) => [name, 0])));
  });
});

/** The pg pools of a PostgreSQL DataSource: the master's, then each replica's. */
function poolsOf(dataSource: DataSource): Pool[] {
  const driver = dataSource.driver as unknown as { master: Pool; slaves: Pool[] };
  return [driver.master, ...driver.slaves];
}

/**
 * Takes `n` clients from `pool` at once (some new, some idle), as TypeORM's query runner gets them
 * before it attaches its own listener.
 */
async function lend(pool: Pool, n: number): Promise<PoolClient[]> {
  return Promise.all(Array.from({ length: n }, () => pool.connect()));
}

describe('guardPostgresPool', () => {
  const open: DataSource[] = [];
  afterAll(async () => {
    for (const ds of open) if (ds.isInitialized) await ds.destroy();
  });
  const replicated = (): DataSource => {
    const ds = new DataSource({
      type: 'postgres',
      replication: { master: { url: databaseUrl() }, slaves: [{ url: databaseUrl() }] },
    });
    open.push(ds);
    return ds;
  };

  it('every client a pool lends has an error listener: guarded before or after initialize, master and replicas, once', async () => {
    const before = replicated();
    guardPostgresPool(before, humanLogger('t', 'silent'));
    await before.initialize();
    const after = replicated();
    await after.initialize();
    guardPostgresPool(after, humanLogger('t', 'silent'));
    guardPostgresPool(after, humanLogger('t', 'silent'));
    for (const ds of [before, after]) {
      expect(poolsOf(ds)).toHaveLength(2);
      for (const pool of poolsOf(ds)) {
        // The pool holds an idle client from initialize(); the other three are new.
        const clients = await lend(pool, 4);
        const counts = clients.map((c) => c.listenerCount('error'));
        for (const c of clients) c.release();
        expect(counts).toEqual([1, 1, 1, 1]);
      }
    }
  });

  it('a lent client whose backend is terminated: the process lives on, the pool drops it, one warning for the burst', async () => {
    const lines: string[] = [];
    const ds = new DataSource({ type: 'postgres', url: databaseUrl() });
    open.push(ds);
    await ds.initialize();
    guardPostgresPool(
      ds,
      humanLogger('t', 'debug', (line) => void lines.push(line)),
    );
    const [pool] = poolsOf(ds) as [Pool];
    const clients = await lend(pool, 3);
    let ended = 0;
    for (const c of clients) c.once('end', () => (ended += 1));
    let total = 0;
    try {
      const pids = clients.map((c) => (c as unknown as { processID: number }).processID);
      await ds.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
      await waitFor(() => ended === 3, 'the broken clients to end', 10_000);
    } finally {
      // Released as TypeORM does once its query failed: the pool drops the broken clients.
      total = pool.totalCount;
      for (const c of clients) c.release();
    }
    expect(pool.totalCount).toBe(total - 3);
    expect(lines.filter((l) => l.startsWith('t: warn: a PostgreSQL connection broke'))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('t: debug: a PostgreSQL connection broke')).length).toBeGreaterThanOrEqual(2);
    expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });

  it('MySQL / MariaDB: does nothing', async () => {
    const ds = new DataSource({ type: 'mariadb', url: mysqlUrl() });
    open.push(ds);
    await ds.initialize();
    const pool = (ds.driver as unknown as { pool: EventEmitter }).pool;
    const listeners = () => pool.eventNames().map((name) => [name, pool.listenerCount(name)]);
    const before = listeners();
    guardPostgresPool(ds);
    expect(listeners()).toEqual(before);
    expect(await ds.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  });
});
