import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Connection } from 'mysql2/promise';
import { Redis } from 'ioredis';
import { Column, DataSource, Entity, PrimaryColumn } from 'typeorm';
import { Coalescer, count, sum } from '../../src';
import { coalesceMigrations } from '../../migrations';
import {
  dispose,
  internals,
  mysqlUrl,
  Order,
  OrderLine,
  redisUrl,
  suffix,
  testLogger,
  waitFor,
  createTestDb,
  type TestDb,
  runCli,
  type CliRun,
  runMigration,
  marksSince,
  lastRow,
  heat,
} from '../support';
import { OwnRedis } from '../support/servers';

// Trigger capture on MariaDB: the generated migration's row triggers write one outbox row per
// changed line and parent, whoever writes (TypeORM, raw SQL from a connection that is not
// TypeORM, a user with no right on the outbox); the relay polls the outbox and takes the rows to
// Redis without a drain; after a drain every order equals its SQL truth.

/** A mysql2 connection of its own (no TypeORM) to `database`, as `user`. */
async function rawConnection(database: string, user?: { name: string; password: string }): Promise<Connection> {
  const url = new URL(mysqlUrl());
  url.pathname = `/${database}`;
  if (user) {
    url.username = user.name;
    url.password = user.password;
  }
  return createConnection(url.toString());
}

/** The names, events and kinds of the coalesce triggers on `table` in `database`. */
async function triggersOn(ds: DataSource, database: string, table: string): Promise<string[]> {
  const rows = (await ds.query(
    `SELECT TRIGGER_NAME AS name, ACTION_TIMING AS timing, EVENT_MANIPULATION AS event, ACTION_ORIENTATION AS per
       FROM information_schema.TRIGGERS
      WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? AND TRIGGER_NAME LIKE 'coalesce%' ORDER BY 1`,
    [database, table],
  )) as { name: string; timing: string; event: string; per: string }[];
  return rows.map((r) => `${r.name} ${r.timing} ${r.event} FOR EACH ${r.per}`);
}

/** Orders, made through TypeORM (the orders have no trigger); returns their ids. */
async function orders(ds: DataSource, n: number): Promise<number[]> {
  const saved = await ds.getRepository(Order).save(Array.from({ length: n }, (_, i) => ({ customer: `c${i}` })));
  return saved.map((o) => o.id);
}

describe('trigger capture of the shop lines (MariaDB)', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  let raw: Connection;
  const namespace = `test-trig-maria-${suffix()}`;
  const ds = (): DataSource => db.dataSource;
  const since = (after: string) => marksSince(ds(), namespace, after);

  beforeAll(async () => {
    db = await createTestDb('triggers_maria', { dialect: 'mariadb', migrations: coalesceMigrations });
    coalescer = new Coalescer({ dataSource: ds(), redis: redisUrl(), namespace, logger: testLogger() });
    coalescer.parent<number>(Order, {
      aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) },
    });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture: 'triggers' });
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
    await coalescer.attach();
    raw = await rawConnection(db.schema);
  });
  afterAll(async () => {
    await raw?.end();
    if (coalescer) await dispose(coalescer);
    await db?.destroy();
  });

  it('installs three row triggers named from the table', async () => {
    expect(await triggersOn(ds(), db.schema, 'shop_order_line')).toEqual([
      'coalesce_shop_order_line_del AFTER DELETE FOR EACH ROW',
      'coalesce_shop_order_line_ins AFTER INSERT FOR EACH ROW',
      'coalesce_shop_order_line_upd AFTER UPDATE FOR EACH ROW',
    ]);
  });

  it('raw SQL from a connection that is not TypeORM marks the parents of each changed row; a move marks the old and the new', async () => {
    const [a, b, c] = await orders(ds(), 3);
    let from = await lastRow(ds());
    await raw.query(
      `INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'x', 1, 1), (?, 'y', 2, 2), (?, 'z', 3, 3)`,
      [a, a, c],
    );
    // Row triggers: one outbox row per line, not per statement.
    expect(await since(from)).toEqual({ [`Order:${a}`]: 2, [`Order:${c}`]: 1 });

    from = await lastRow(ds());
    await raw.query('UPDATE shop_order_line SET order_id = ? WHERE order_id = ?', [b, a]);
    expect(await since(from)).toEqual({ [`Order:${a}`]: 2, [`Order:${b}`]: 2 });

    // A line whose columns all stay the same marks nothing; a change of case only does mark.
    from = await lastRow(ds());
    await raw.query('UPDATE shop_order_line SET qty = qty, sku = sku WHERE order_id = ?', [b]);
    expect(await since(from)).toEqual({});
    await raw.query(`UPDATE shop_order_line SET sku = 'Z' WHERE order_id = ?`, [c]);
    expect(await since(from)).toEqual({ [`Order:${c}`]: 1 });

    from = await lastRow(ds());
    await raw.query('DELETE FROM shop_order_line WHERE order_id = ?', [c]);
    expect(await since(from)).toEqual({ [`Order:${c}`]: 1 });

    // Statements of a transaction rolled back leave no row.
    from = await lastRow(ds());
    await raw.beginTransaction();
    await raw.query('UPDATE shop_order_line SET qty = qty + 1 WHERE order_id = ?', [b]);
    await raw.query('DELETE FROM shop_order_line WHERE order_id = ?', [b]);
    await raw.rollback();
    expect(await since(from)).toEqual({});

    // TypeORM's bulk writes and soft deletes, which the subscriber cannot resolve without lookups.
    await ds().createQueryBuilder().update(OrderLine).set({ qty: 9 }).where('order_id = :b', { b }).execute();
    await ds().getRepository(OrderLine).softDelete({ orderId: b });
    expect(await since(from)).toEqual({ [`Order:${b}`]: 4 });
  });

  it('the relay takes every commit to Redis without a drain; after a drain every order equals its SQL truth', async () => {
    await coalescer.drain();
    const [a, b, c, d] = await orders(ds(), 4);
    const other = await rawConnection(db.schema);
    try {
      await raw.query(
        `INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'a1', 1, 2.5), (?, 'a2', 2, 1.25)`,
        [a, a],
      );
      await other.beginTransaction();
      await other.query(
        `INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'b1', 3, 3), (?, 'c1', 4, 4), (?, 'd1', 1, 9.99)`,
        [b, c, d],
      );
      await other.query(`UPDATE shop_order_line SET order_id = ? WHERE sku = 'a2' AND order_id = ?`, [b, a]);
      await other.commit();
      await ds().getRepository(OrderLine).save({ orderId: c, sku: 'c2', qty: 5, unitPrice: '0.50' });
      await ds().createQueryBuilder().delete().from(OrderLine).where('order_id = :d', { d }).execute();
      await raw.query(`UPDATE shop_order_line SET unit_price = unit_price * 2 WHERE order_id = ?`, [c]);
    } finally {
      await other.end();
    }
    const touched = [a, b, c, d].map((id) => `Order:${id}`);
    await waitFor(async () => {
      const h = await heat(coalescer);
      return touched.every((m) => (h[m] ?? 0) > 0) && (await internals(coalescer).outbox.oldestUnsent()) === undefined;
    }, 'every row relayed to Redis without a drain');

    const result = await coalescer.drain({ concurrency: 2 });
    expect(result.failed).toBe(0);
    const verified = await coalescer.verify(Order);
    expect({ drifted: verified.drifted, skipped: verified.skipped }).toEqual({ drifted: 0, skipped: 0 });
    expect(verified.checked).toBeGreaterThanOrEqual(4);
    const stats = await coalescer.stats();
    expect({ pending: stats.pending, inflight: stats.inflight }).toEqual({ pending: 0, inflight: 0 });
    const stored = (await ds().query(`SELECT id, line_count AS n, total FROM shop_order WHERE id IN (?, ?, ?, ?) ORDER BY id`, [
      a,
      b,
      c,
      d,
    ])) as { id: number; n: number; total: string }[];
    expect(stored.map((o) => [o.n, Number(o.total)])).toEqual([
      [1, 2.5],
      [2, 11.5],
      [2, 37],
      [0, 0],
    ]);
  });

  it('sixteen writers at once while the relay runs: every write commits, and every order converges', async () => {
    await coalescer.drain();
    const ids = await orders(ds(), 10);
    const writers = await Promise.all(Array.from({ length: 16 }, () => rawConnection(db.schema)));
    const failures: string[] = [];
    try {
      await Promise.all(
        writers.map(async (w, k) => {
          for (let i = 0; i < 60; i += 1) {
            const order = ids[(k + i) % ids.length] as number;
            try {
              // Inserts, and updates by primary key: writers never lock one another's rows or gaps.
              if (i % 3 === 2) await w.query('UPDATE shop_order_line SET qty = qty + 1 WHERE id = LAST_INSERT_ID()');
              else await w.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'c', 1, 1)`, [order]);
            } catch (error) {
              failures.push((error as Error).message);
            }
          }
        }),
      );
    } finally {
      await Promise.all(writers.map((w) => w.end()));
    }
    expect(failures).toEqual([]);
    await waitFor(async () => (await internals(coalescer).outbox.oldestUnsent()) === undefined, 'the outbox relayed');
    await coalescer.drain();
    const verified = await coalescer.verify(Order);
    expect({ drifted: verified.drifted, skipped: verified.skipped }).toEqual({ drifted: 0, skipped: 0 });
  });

  it('a writer with no right on the outbox is captured: the triggers write as their definer', async () => {
    const user = { name: `cw_${suffix()}`, password: `pw-${suffix()}` };
    await ds().query(`CREATE USER '${user.name}'@'%' IDENTIFIED BY '${user.password}'`);
    try {
      await ds().query(`GRANT SELECT, INSERT, UPDATE, DELETE ON \`${db.schema}\`.shop_order_line TO '${user.name}'@'%'`);
      const writer = await rawConnection(db.schema, user);
      try {
        const [a] = await orders(ds(), 1);
        const from = await lastRow(ds());
        await writer.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'w', 1, 1)`, [a]);
        expect(await since(from)).toEqual({ [`Order:${a}`]: 1 });
        await expect(writer.query('SELECT count(*) FROM coalesce_outbox')).rejects.toThrow(/denied/);
      } finally {
        await writer.end();
      }
    } finally {
      await ds().query(`DROP USER '${user.name}'@'%'`);
    }
  });

  it('the migration down() drops the triggers; writes then mark nothing', async () => {
    await runMigration(ds(), coalescer.triggerMigration(), 'down');
    expect(await triggersOn(ds(), db.schema, 'shop_order_line')).toEqual([]);
    const [a] = await orders(ds(), 1);
    const from = await lastRow(ds());
    await raw.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'n', 1, 1)`, [a]);
    await raw.query('DELETE FROM shop_order_line WHERE order_id = ?', [a]);
    expect(await since(from)).toEqual({});
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
    expect(await triggersOn(ds(), db.schema, 'shop_order_line')).toHaveLength(3);
  });
});

describe('the relay beside writing transactions (MariaDB)', () => {
  let db: TestDb;
  let redis: OwnRedis;
  let coalescer: Coalescer;
  const namespace = `test-trig-maria-locks-${suffix()}`;
  const ds = (): DataSource => db.dataSource;

  beforeAll(async () => {
    db = await createTestDb('triggers_maria_locks', { dialect: 'mariadb', migrations: coalesceMigrations });
    // A Redis of its own, which the test pauses.
    redis = new OwnRedis();
    await redis.start();
    // The poll stays out of the way: the test runs the relay itself.
    coalescer = new Coalescer({
      dataSource: ds(),
      redis: redis.url,
      namespace,
      logger: testLogger(),
      relayPoll: { minMs: 60_000, maxMs: 60_000 },
    });
    coalescer.parent<number>(Order, {
      aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) },
    });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture: 'triggers' });
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
    await coalescer.attach();
  });
  afterAll(async () => {
    await coalescer?.close();
    await redis?.destroy();
    await db?.destroy();
  });

  it('a relay waiting on Redis, its rows locked, holds up no writer: the triggers insert meanwhile', async () => {
    const [a, b] = await orders(ds(), 2);
    await coalescer.drain();
    await ds().query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'x', 1, 1)`, [a]);
    const pauser = new Redis(redis.url);
    const writer = await rawConnection(db.schema);
    try {
      // Writes (the relay's marking script among them) wait; CLIENT UNPAUSE does not.
      await pauser.client('PAUSE', 10_000, 'WRITE');
      const relay = internals(coalescer).outbox.relay(internals(coalescer).guard.epoch);
      // The relay's transaction has locked the row and waits for Redis.
      await waitFor(
        () =>
          ds()
            .query('SELECT id FROM coalesce_outbox FOR UPDATE NOWAIT')
            .then(
              () => false,
              () => true,
            ),
        'the relay to lock its row',
      );
      await writer.query('SET SESSION innodb_lock_wait_timeout = 2');
      await writer.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'y', 2, 2)`, [b]);
      await pauser.client('UNPAUSE');
      expect(await relay).toBe(1);
    } finally {
      await pauser.client('UNPAUSE').catch(() => undefined);
      pauser.disconnect();
      await writer.end();
    }
    await coalescer.drain();
    expect((await coalescer.verify(Order)).drifted).toBe(0);
  });
  it('a statement on the lines that waits holds up no other writer: the triggers take no table lock of the outbox', async () => {
    const [a, b, held] = await orders(ds(), 3);
    const holder = await rawConnection(db.schema);
    const slow = await rawConnection(db.schema);
    const other = await rawConnection(db.schema);
    try {
      // The slow statement's first line fires its trigger, then its second waits for the order the holder locked.
      await holder.beginTransaction();
      await holder.query('SELECT id FROM shop_order WHERE id = ? FOR UPDATE', [held]);
      const waiting = slow.query(
        `INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'first', 1, 1), (?, 'second', 1, 1)`,
        [a, held],
      );
      await waitFor(async () => {
        const [row] = (await ds().query(
          `SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE id = ? AND info LIKE 'INSERT INTO shop_order_line%' AND time_ms > 50`,
          [slow.threadId],
        )) as { n: number | string }[];
        return Number(row?.n) > 0;
      }, 'the slow statement to wait');
      // An INSERT ... SELECT in a trigger would hold the outbox's AUTO-INC lock until the slow statement ends.
      await other.query('SET SESSION innodb_lock_wait_timeout = 2');
      await other.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'other', 1, 1)`, [b]);
      await holder.commit();
      await waiting;
    } finally {
      await Promise.all([holder.end(), slow.end(), other.end()]);
    }
    const rows = (await ds().query(
      'SELECT member, count(*) AS n FROM coalesce_outbox WHERE member IN (?, ?, ?) GROUP BY member',
      [`Order:${a}`, `Order:${b}`, `Order:${held}`],
    )) as { member: string; n: string | number }[];
    expect(Object.fromEntries(rows.map((r) => [r.member, Number(r.n)]))).toEqual({
      [`Order:${a}`]: 1,
      [`Order:${b}`]: 1,
      [`Order:${held}`]: 1,
    });
  });
});

// Parents of every id kind, and a child of all three with a composite primary key.
@Entity({ name: 'tgm_uuid_parent' })
class TgmUuidParent {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
}

@Entity({ name: 'tgm_big_parent' })
class TgmBigParent {
  @PrimaryColumn({ type: 'bigint' }) id!: string;
}

@Entity({ name: 'tgm_key_parent' })
class TgmKeyParent {
  @PrimaryColumn({ type: 'varchar', length: 60 }) id!: string;
}

@Entity({ name: 'tgm_item' })
class TgmItem {
  @PrimaryColumn({ type: 'int' }) shelf!: number;
  @PrimaryColumn({ type: 'int' }) slot!: number;
  // Text, as another program may keep a uuid: the trigger lowercases it.
  @Column({ name: 'uuid_parent', type: 'varchar', length: 36, nullable: true }) uuidParent!: string | null;
  @Column({ name: 'big_parent', type: 'bigint', nullable: true }) bigParent!: string | null;
  @Column({ name: 'key_parent', type: 'varchar', length: 60, nullable: true }) keyParent!: string | null;
}

describe('member spelling of the MariaDB triggers', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  const namespace = `test-trig-maria-ids-${suffix()}`;
  const ds = (): DataSource => db.dataSource;
  const noop = async (): Promise<void> => undefined;

  beforeAll(async () => {
    db = await createTestDb('triggers_maria_ids', {
      dialect: 'mariadb',
      entities: [TgmUuidParent, TgmBigParent, TgmKeyParent, TgmItem],
      migrations: coalesceMigrations,
    });
    coalescer = new Coalescer({ dataSource: ds(), redis: redisUrl(), namespace, logger: testLogger() });
    coalescer.parent(TgmUuidParent, { recompute: noop });
    coalescer.parent(TgmBigParent, { recompute: noop, priority: 'high' });
    coalescer.parent(TgmKeyParent, { recompute: noop });
    for (const [parent, foreignKey] of [
      [TgmUuidParent, 'uuidParent'],
      [TgmBigParent, 'bigParent'],
      [TgmKeyParent, 'keyParent'],
    ] as const) {
      coalescer.child(TgmItem, { parent, foreignKey, capture: 'triggers' });
    }
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
    await coalescer.attach();
  });
  afterAll(async () => {
    if (coalescer) await dispose(coalescer);
    await db?.destroy();
  });

  it('uuid lowercase, bigint in decimal, strings as they are; NULL and empty keys mark nothing; a move marks old and new', async () => {
    const uuid = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11';
    const big = '9007199254740993';
    const key = "Ab:c d'é";
    const from = await lastRow(ds());
    await ds().query(
      `INSERT INTO tgm_item (shelf, slot, uuid_parent, big_parent, key_parent) VALUES (1, 1, ?, ?, ?), (1, 2, NULL, NULL, '')`,
      [uuid, big, key],
    );
    const r = coalescer.registry;
    const expected = {
      [r.encode(r.parentOf(TgmUuidParent), uuid)]: 1,
      [r.encode(r.parentOf(TgmBigParent), big)]: 1,
      [r.encode(r.parentOf(TgmKeyParent), key)]: 1,
    };
    expect(expected).toEqual({
      [`TgmUuidParent:${uuid.toLowerCase()}`]: 1,
      [`TgmBigParent:${big}`]: 1,
      [`TgmKeyParent:${key}`]: 1,
    });
    expect(await marksSince(ds(), namespace, from)).toEqual(expected);
    // Each row carries its type's priority base.
    const bases = (await ds().query('SELECT DISTINCT member, base FROM coalesce_outbox WHERE id > ? ORDER BY member', [
      from,
    ])) as { member: string; base: number }[];
    expect(bases.find((b) => b.member.startsWith('TgmBigParent:'))?.base).toBe(2e12);
    // The row moves to another key parent: the old and the new, and its other parents once each.
    const moved = await lastRow(ds());
    await ds().query(`UPDATE tgm_item SET key_parent = 'other' WHERE shelf = 1 AND slot = 1`);
    expect(await marksSince(ds(), namespace, moved)).toEqual({ ...expected, 'TgmKeyParent:other': 1 });
    await waitFor(async () => (await internals(coalescer).outbox.oldestUnsent()) === undefined, 'the outbox relayed');
    await coalescer.drain();
    expect((await coalescer.stats()).pending).toBe(0);
  });
});

describe('coalesce triggers (the command) on MariaDB', () => {
  const root = join(__dirname, '..', '..');
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const app = join(root, 'test', 'fixtures', 'shop-app.cjs');
  const namespace = `test-trig-maria-cli-${suffix()}`;
  let db: TestDb;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createTestDb('triggers_maria_cli', { dialect: 'mariadb', migrations: coalesceMigrations });
    dir = mkdtempSync(join(tmpdir(), 'coalesce-triggers-maria-'));
    env = {
      ...process.env,
      MYSQL_URL: mysqlUrl(),
      REDIS_URL: redisUrl(),
      TEST_DIALECT: 'mariadb',
      TEST_SCHEMA: db.schema,
      TEST_NAMESPACE: namespace,
      TEST_CAPTURE: 'triggers',
    };
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await db?.destroy();
  });

  const run = (args: string[]): Promise<CliRun> => runCli(cli, ['--app', app, ...args], env);

  it('writes a migration that TypeORM runs and reverts on MariaDB', async () => {
    const r = await run(['triggers', 'OrderLine', '--out', join(dir, 'cjs'), '--name', 'LineTriggers', '--js']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const file = r.stdout.trim();
    expect(file).toMatch(/cjs\/\d{13}-LineTriggers\.js$/);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('row triggers on');
    expect(text).toContain(
      'CREATE OR REPLACE TRIGGER \\`coalesce_shop_order_line_upd\\` AFTER UPDATE ON \\`shop_order_line\\` FOR EACH ROW',
    );

    const url = new URL(mysqlUrl());
    url.pathname = `/${db.schema}`;
    const runner = new DataSource({ type: 'mariadb', url: url.toString(), entities: [Order, OrderLine], migrations: [file] });
    await runner.initialize();
    try {
      const ran = await runner.runMigrations();
      expect(ran.map((m) => m.name)).toEqual([expect.stringMatching(/^LineTriggers\d{13}$/)]);
      expect(await triggersOn(runner, db.schema, 'shop_order_line')).toHaveLength(3);
      const [a] = await orders(runner, 1);
      await runner.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'x', 1, 1), (?, 'y', 1, 1)`, [
        a,
        a,
      ]);
      const from = await lastRow(runner);
      await runner.query('DELETE FROM shop_order_line WHERE order_id = ?', [a]);
      expect(await marksSince(runner, namespace, from)).toEqual({ [`Order:${a}`]: 2 });
      await runner.undoLastMigration();
      expect(await triggersOn(runner, db.schema, 'shop_order_line')).toEqual([]);
    } finally {
      await runner.destroy();
    }
  });

  it('--drop prints the DROP TRIGGER statements', async () => {
    const drop = await run(['triggers', '--drop']);
    expect(drop.stderr).toBe('');
    expect(drop.code).toBe(0);
    expect(drop.stdout.trim().split('\n')).toEqual([
      'DROP TRIGGER IF EXISTS `coalesce_shop_order_line_ins`;',
      'DROP TRIGGER IF EXISTS `coalesce_shop_order_line_upd`;',
      'DROP TRIGGER IF EXISTS `coalesce_shop_order_line_del`;',
    ]);
  });
});
