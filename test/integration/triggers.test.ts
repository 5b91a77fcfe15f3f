import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { Column, DataSource, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { Coalescer, RegistrationError } from '../../src';
import { coalesceMigrations } from '../../migrations';
import { OutboxListener } from '../../src/delivery/listener';
import { OUTBOX_CHANNEL } from '../../src/delivery/outbox';
import {
  countMismatches,
  createTestDb,
  databaseUrl,
  dispose,
  internals,
  Order,
  OrderLine,
  recomputeOrders,
  redisUrl,
  seedOrders,
  suffix,
  testLogger,
  waitFor,
  type TestDb,
  runCli,
  type CliRun,
  runMigration,
  marksSince,
  lastRow,
  heat,
} from '../support';

// Trigger capture on PostgreSQL: the generated migration's statement-level triggers write one
// outbox row per statement and parent, whoever writes (QueryBuilder, raw SQL from another
// client), and notify nobody; the relay polls the outbox and takes them to Redis without a
// drain. Triggers of earlier versions, which notify, are still relayed at once through LISTEN.

/** Waits for the relay to take every row the triggers wrote to Redis, then drains them. */
async function settle(coalescer: Coalescer): Promise<void> {
  await waitFor(async () => (await internals(coalescer).outbox.oldestUnsent()) === undefined, 'the outbox relayed');
  await coalescer.drain();
  expect(await heat(coalescer)).toEqual({});
}

/**
 * A connection listening on the channel the triggers of earlier versions notify; `close()` says
 * which notifications for `namespace` it heard. A notification of its own, sent last, is
 * delivered after every one committed before it, so none is missed.
 */
async function witness(namespace: string): Promise<{ close(): Promise<string[]> }> {
  const client = new Client({ connectionString: databaseUrl() });
  await client.connect();
  const heard: string[] = [];
  const end = `witness-end-${suffix()}`;
  let ended = false;
  client.on('notification', (n) => {
    if (n.payload === end) ended = true;
    else if (n.payload === namespace) heard.push(n.channel);
  });
  await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
  let closed: Promise<string[]> | undefined;
  return {
    close: () =>
      (closed ??= (async () => {
        try {
          await client.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, end]);
          await waitFor(() => ended, 'the witness notification');
          return heard;
        } finally {
          await client.end();
        }
      })()),
  };
}

describe('trigger capture of the shop lines (PostgreSQL)', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  let raw: Client;
  const namespace = `test-trig-${suffix()}`;
  const ds = (): DataSource => db.dataSource;
  /** The lines table as another program names it: qualified, from a session on the default search_path. */
  const lines = (): string => `"${db.schema}".shop_order_line`;
  const since = (after: string) => marksSince(ds(), namespace, after);

  beforeAll(async () => {
    db = await createTestDb('triggers');
    coalescer = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace, logger: testLogger() });
    coalescer.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture: 'triggers' });
    await runMigration(db.dataSource, coalescer.triggerMigration(), 'up');
    await coalescer.attach();
    raw = new Client({ connectionString: databaseUrl() });
    await raw.connect();
  });
  afterAll(async () => {
    await raw?.end();
    if (coalescer) await dispose(coalescer);
    await db?.destroy();
  });

  it('installs three statement-level triggers with transition tables, named from the table', async () => {
    const rows = (await ds().query(
      `SELECT t.tgname AS name, (t.tgtype & 1) AS per_row, t.tgoldtable AS old, t.tgnewtable AS new
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = 'shop_order_line' AND NOT t.tgisinternal ORDER BY 1`,
      [db.schema],
    )) as { name: string; per_row: number; old: string | null; new: string | null }[];
    expect(rows).toEqual([
      { name: 'coalesce_shop_order_line_del', per_row: 0, old: 'coalesce_old', new: null },
      { name: 'coalesce_shop_order_line_ins', per_row: 0, old: null, new: 'coalesce_new' },
      { name: 'coalesce_shop_order_line_upd', per_row: 0, old: 'coalesce_old', new: 'coalesce_new' },
    ]);
  });

  it('a QueryBuilder delete marks each parent of the deleted lines once', async () => {
    const [a, b, c] = await seedOrders(ds(), 3, 3);
    const from = await lastRow(ds());
    await ds()
      .createQueryBuilder()
      .delete()
      .from(OrderLine)
      .where('order_id IN (:...ids)', { ids: [a, b] })
      .execute();
    expect(await since(from)).toEqual({ [`Order:${a}`]: 1, [`Order:${b}`]: 1 });
    expect(await ds().query(`SELECT 1 FROM shop_order_line WHERE order_id = $1`, [c])).toHaveLength(3);
  });

  it('a QueryBuilder update that moves lines marks the old and the new parents once; one that changes nothing marks nothing', async () => {
    const [a, b, c] = await seedOrders(ds(), 3, 2);
    let from = await lastRow(ds());
    await ds()
      .createQueryBuilder()
      .update(OrderLine)
      .set({ orderId: c })
      .where('order_id IN (:...ids)', { ids: [a, b] })
      .execute();
    expect(await since(from)).toEqual({ [`Order:${a}`]: 1, [`Order:${b}`]: 1, [`Order:${c}`]: 1 });

    from = await lastRow(ds());
    await ds()
      .createQueryBuilder()
      .update(OrderLine)
      .set({ qty: () => 'qty' })
      .where('order_id = :c', { c })
      .execute();
    expect(await since(from)).toEqual({});

    from = await lastRow(ds());
    await ds().createQueryBuilder().update(OrderLine).set({ qty: 7 }).where('order_id = :c', { c }).execute();
    await ds().getRepository(OrderLine).softDelete({ orderId: c });
    expect(await since(from)).toEqual({ [`Order:${c}`]: 2 });
  });

  it('raw SQL from another client marks old and new parents, once per statement', async () => {
    const [a, b, c, d] = await seedOrders(ds(), 4, 2);
    let from = await lastRow(ds());
    await raw.query(`UPDATE ${lines()} SET order_id = $1 WHERE order_id = $2`, [b, a]);
    expect(await since(from)).toEqual({ [`Order:${a}`]: 1, [`Order:${b}`]: 1 });

    from = await lastRow(ds());
    await raw.query(`DELETE FROM ${lines()} WHERE order_id IN ($1, $2)`, [c, d]);
    expect(await since(from)).toEqual({ [`Order:${c}`]: 1, [`Order:${d}`]: 1 });

    from = await lastRow(ds());
    await raw.query(
      `INSERT INTO ${lines()} (order_id, sku, qty, unit_price) VALUES ($1, 'x', 1, 1), ($1, 'y', 2, 2), ($2, 'z', 3, 3)`,
      [a, c],
    );
    expect(await since(from)).toEqual({ [`Order:${a}`]: 1, [`Order:${c}`]: 1 });

    // Two statements in one transaction are two rows; a rolled-back statement leaves none.
    from = await lastRow(ds());
    await raw.query('BEGIN');
    await raw.query(`UPDATE ${lines()} SET qty = qty + 1 WHERE order_id = $1`, [a]);
    await raw.query(`UPDATE ${lines()} SET unit_price = unit_price + 1 WHERE order_id = $1`, [a]);
    await raw.query('COMMIT');
    await raw.query('BEGIN');
    await raw.query(`DELETE FROM ${lines()} WHERE order_id = $1`, [b]);
    await raw.query('ROLLBACK');
    expect(await since(from)).toEqual({ [`Order:${a}`]: 2 });
  });

  it('a drain after every kind of write converges, and leaves nothing in Redis or the outbox', async () => {
    const [a, b] = await seedOrders(ds(), 2, 3);
    await raw.query(`UPDATE ${lines()} SET order_id = $1 WHERE order_id = $2 AND sku = 's1'`, [b, a]);
    await ds().createQueryBuilder().delete().from(OrderLine).where('order_id = :a AND sku = :s', { a, s: 's2' }).execute();
    await ds().getRepository(OrderLine).save({ orderId: a, sku: 'new', qty: 4, unitPrice: '3.25' });
    const result = await coalescer.drain({ concurrency: 2 });
    expect(result.failed).toBe(0);
    expect(await countMismatches(ds().manager)).toBe(0);
    const stats = await coalescer.stats();
    expect({ pending: stats.pending, inflight: stats.inflight, outbox: stats.outbox }).toEqual({
      pending: 0,
      inflight: 0,
      outbox: 0,
    });
  });

  it('a line saved through TypeORM is marked by its trigger only: the subscriber stands aside', async () => {
    await coalescer.drain();
    const order = await ds().getRepository(Order).save({ customer: 'form' });
    const before = (await coalescer.stats()).marker.marks;
    const from = await lastRow(ds());
    await ds().transaction(async (m) => {
      await m.save(
        Array.from({ length: 5 }, (_, i) => m.create(OrderLine, { orderId: order.id, sku: `f${i}`, qty: 1, unitPrice: '1.00' })),
      );
    });
    // TypeORM inserts the five lines in one statement: one row, one mark.
    const rows = (await since(from))[`Order:${order.id}`] ?? 0;
    expect(rows).toBe(1);
    await waitFor(async () => (await heat(coalescer))[`Order:${order.id}`] === rows, 'the trigger marks in Redis');
    expect(await heat(coalescer)).toEqual({ [`Order:${order.id}`]: rows });
    expect((await coalescer.stats()).marker.marks).toBe(before);
    await coalescer.drain();
    expect(await countMismatches(ds().manager, [order.id])).toBe(0);
  });

  it('the relay takes a raw-SQL commit to Redis without a drain, and again after the listen connection is killed', async () => {
    const [a, b] = await seedOrders(ds(), 2, 1);
    await coalescer.drain();
    expect(await heat(coalescer)).toEqual({});

    await raw.query(`UPDATE ${lines()} SET qty = qty + 1 WHERE order_id = $1`, [a]);
    await waitFor(async () => (await heat(coalescer))[`Order:${a}`] === 1, `Order:${a} relayed without a drain`);

    const killed = (await raw.query(
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'LISTEN%'`,
      [`coalesce listen ${namespace}`],
    )) as { rows: { ok: boolean }[] };
    expect(killed.rows).toEqual([{ ok: true }]);

    await raw.query(`UPDATE ${lines()} SET qty = qty + 1 WHERE order_id = $1`, [b]);
    await waitFor(
      async () => (await heat(coalescer))[`Order:${b}`] === 1,
      `Order:${b} relayed after the listen connection was killed`,
    );
    expect(await heat(coalescer)).toEqual({ [`Order:${a}`]: 1, [`Order:${b}`]: 1 });
    await coalescer.drain();
    expect(await countMismatches(ds().manager, [a as number, b as number])).toBe(0);
  });

  it('the triggers notify nobody: the relay polls the outbox and takes each commit to Redis without a drain', async () => {
    const [a] = await seedOrders(ds(), 1, 1);
    await settle(coalescer);
    const heard = await witness(namespace);
    try {
      for (let i = 1; i <= 3; i += 1) {
        await raw.query(`UPDATE ${lines()} SET qty = qty + 1 WHERE order_id = $1`, [a]);
        await waitFor(async () => (await heat(coalescer))[`Order:${a}`] === i, `commit ${i} relayed`);
      }
      expect(await heard.close()).toEqual([]);
    } finally {
      await heard.close();
    }
    await coalescer.drain();
    expect(await countMismatches(ds().manager, [a as number])).toBe(0);
  });

  it('notifications coalesce: one relay in flight, one queued; close() ends the connection', async () => {
    const other = `test-trig-burst-${suffix()}`;
    let calls = 0;
    let released = false;
    const gates: (() => void)[] = [];
    const relay = (): Promise<void> => {
      calls += 1;
      return released ? Promise.resolve() : new Promise<void>((resolve) => gates.push(resolve));
    };
    const listener = new OutboxListener(ds(), other, relay, testLogger());
    // Counts what the listener heard before the first gate opens (the connect, and each
    // notification naming this namespace), so that gate opens only once the burst has arrived.
    let pokes = 0;
    const poke = listener.poke.bind(listener);
    listener.poke = () => {
      pokes += 1;
      poke();
    };
    try {
      await listener.start();
      // The relay on connect is in flight; a burst of notifications meanwhile queues one more.
      await waitFor(() => calls === 1, 'the relay on connect');
      for (let i = 0; i < 20; i += 1) await raw.query(`SELECT pg_notify('coalesce_outbox', $1)`, [other]);
      await raw.query(`SELECT pg_notify('coalesce_outbox', 'some-other-namespace')`);
      await waitFor(() => pokes === 21, 'the burst heard');
      expect(calls).toBe(1);
      gates.shift()?.();
      await waitFor(() => calls === 2, 'the queued relay');
      gates.shift()?.();
      await raw.query(`SELECT pg_notify('coalesce_outbox', $1)`, [other]);
      await waitFor(() => calls === 3, 'a relay for a later notification');
      gates.shift()?.();
      expect(calls).toBe(3);
    } finally {
      released = true;
      for (const open of gates.splice(0)) open();
      await listener.close();
    }
    await waitFor(async () => {
      const rows = (await raw.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1`, [`coalesce listen ${other}`]))
        .rows;
      return rows.length === 0;
    }, 'the listen connection closed');
  });

  it('a listen connection that cannot be opened is retried in the background, never rejected', async () => {
    // The test DataSource's driver, pointed at a port where nothing listens.
    const unreachable = { options: { type: 'postgres', url: 'postgres://postgres@127.0.0.1:9/none' }, driver: ds().driver };
    const listener = new OutboxListener(unreachable as unknown as DataSource, 'nowhere', async () => undefined, testLogger(), {
      minMs: 10,
      maxMs: 20,
    });
    await listener.start();
    expect(listener.listening).toBe(false);
    await listener.close();
  });

  it('the migration down() drops the triggers and their function', async () => {
    await runMigration(ds(), coalescer.triggerMigration(), 'down');
    const [row] = (await ds().query(
      `SELECT (SELECT count(*)::int FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = $1 AND t.tgname LIKE 'coalesce%') AS triggers,
              (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = $1 AND p.proname LIKE 'coalesce%') AS functions`,
      [db.schema],
    )) as { triggers: number; functions: number }[];
    expect(row).toEqual({ triggers: 0, functions: 0 });
    const [a] = await seedOrders(ds(), 1, 1);
    const from = await lastRow(ds());
    await raw.query(`DELETE FROM ${lines()} WHERE order_id = $1`, [a]);
    expect(await since(from)).toEqual({});
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
  });
});

// Parents of every id kind, and one child of each capture mode.
@Entity({ name: 'tg_order' })
class TgOrder {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
}

@Entity({ name: 'tg_line' })
class TgLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'order_id', type: 'int' }) orderId!: number;
  @Column({ type: 'int', default: 1 }) qty!: number;
}

@Entity({ name: 'tg_note' })
class TgNote {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'order_id', type: 'int' }) orderId!: number;
  @Column({ type: 'varchar', length: 60, default: '' }) text!: string;
}

@Entity({ name: 'tg_uuid_parent' })
class TgUuidParent {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
}

@Entity({ name: 'tg_big_parent' })
class TgBigParent {
  @PrimaryColumn({ type: 'bigint' }) id!: string;
}

@Entity({ name: 'tg_key_parent' })
class TgKeyParent {
  @PrimaryColumn({ type: 'varchar', length: 60 }) id!: string;
}

/** A child of three parents, one per id kind, keyed on a composite primary key. */
@Entity({ name: 'tg_item' })
class TgItem {
  @PrimaryColumn({ type: 'int' }) shelf!: number;
  @PrimaryColumn({ type: 'int' }) slot!: number;
  @Column({ name: 'uuid_parent', type: 'uuid', nullable: true }) uuidParent!: string | null;
  @Column({ name: 'big_parent', type: 'bigint', nullable: true }) bigParent!: string | null;
  @Column({ name: 'key_parent', type: 'varchar', length: 60, nullable: true }) keyParent!: string | null;
}

const TG_ENTITIES = [TgOrder, TgLine, TgNote, TgUuidParent, TgBigParent, TgKeyParent, TgItem];

describe('trigger capture beside the subscriber, and member spelling (PostgreSQL)', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  const namespace = `test-trig-mixed-${suffix()}`;
  const ds = (): DataSource => db.dataSource;
  const noop = async (): Promise<void> => undefined;

  beforeAll(async () => {
    // The outbox tables come from the library migrations, as a host's would.
    db = await createTestDb('triggers_mixed', { entities: TG_ENTITIES, synchronize: true, migrations: coalesceMigrations });
    coalescer = new Coalescer({ dataSource: ds(), redis: redisUrl(), namespace, logger: testLogger() });
    coalescer.parent(TgOrder, { recompute: noop });
    coalescer.parent(TgUuidParent, { recompute: noop });
    coalescer.parent(TgBigParent, { recompute: noop, priority: 'high' });
    coalescer.parent(TgKeyParent, { recompute: noop });
    coalescer.child(TgLine, { parent: TgOrder, foreignKey: 'orderId', capture: 'triggers' });
    coalescer.child(TgNote, { parent: TgOrder, foreignKey: 'orderId' });
    for (const [parent, foreignKey] of [
      [TgUuidParent, 'uuidParent'],
      [TgBigParent, 'bigParent'],
      [TgKeyParent, 'keyParent'],
    ] as const) {
      coalescer.child(TgItem, { parent, foreignKey, capture: 'triggers' });
    }
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
    await coalescer.attach();
  });
  afterAll(async () => {
    if (coalescer) await dispose(coalescer);
    await db?.destroy();
  });

  it('the default migration covers the children registered with capture triggers, and only them', () => {
    const { up } = coalescer.triggerStatements();
    const text = up.join('\n');
    expect(text).toContain('"tg_line"');
    expect(text).toContain('"tg_item"');
    expect(text).not.toContain('tg_note');
  });

  it('mixed mode: a trigger child and a subscriber child of one parent are each marked once', async () => {
    const order = await ds().getRepository(TgOrder).save({});
    const from = await lastRow(ds());
    const before = (await coalescer.stats()).marker.marks;
    await ds().getRepository(TgLine).save({ orderId: order.id });
    expect(await marksSince(ds(), namespace, from)).toEqual({ [`TgOrder:${order.id}`]: 1 });
    await ds().getRepository(TgNote).save({ orderId: order.id, text: 'hi' });
    await coalescer.flushed();
    // The note's mark went straight to Redis (no outbox row); the line's came from its trigger.
    expect(await marksSince(ds(), namespace, from)).toEqual({ [`TgOrder:${order.id}`]: 1 });
    expect((await coalescer.stats()).marker.marks).toBe(before + 1);
    await waitFor(async () => (await heat(coalescer))[`TgOrder:${order.id}`] === 2, 'both marks in Redis');
    await coalescer.drain();
  });

  it('the trigger spells members exactly as the library does: uuid lowercase, bigint in decimal, strings as they are', async () => {
    const uuid = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11';
    const big = '9007199254740993';
    const key = 'Ab:c d';
    const from = await lastRow(ds());
    await ds().query(
      `INSERT INTO tg_item (shelf, slot, uuid_parent, big_parent, key_parent) VALUES (1, 1, $1, $2, $3), (1, 2, NULL, NULL, '')`,
      [uuid, big, key],
    );
    const r = coalescer.registry;
    const expected = {
      [r.encode(r.parentOf(TgUuidParent), uuid)]: 1,
      [r.encode(r.parentOf(TgBigParent), big)]: 1,
      [r.encode(r.parentOf(TgKeyParent), key)]: 1,
    };
    expect(expected).toEqual({ [`TgUuidParent:${uuid.toLowerCase()}`]: 1, [`TgBigParent:${big}`]: 1, [`TgKeyParent:${key}`]: 1 });
    expect(await marksSince(ds(), namespace, from)).toEqual(expected);
    // Each row carries its type's priority base; the composite key pairs old and new rows.
    const bases = (await ds().query(`SELECT DISTINCT member, base FROM coalesce_outbox WHERE id > $1 ORDER BY member`, [
      from,
    ])) as { member: string; base: number }[];
    expect(bases.find((b) => b.member.startsWith('TgBigParent:'))?.base).toBe(2e12);
    // A row moved from one parent to another marks both; its other parents' row changed too.
    const moved = await lastRow(ds());
    await ds().query(`UPDATE tg_item SET key_parent = 'other' WHERE shelf = 1 AND slot = 1`);
    expect(await marksSince(ds(), namespace, moved)).toEqual({ ...expected, 'TgKeyParent:other': 1 });
    await coalescer.drain();
    expect((await coalescer.stats()).pending).toBe(0);
  });

  it('registration errors name the child and what is allowed', async () => {
    const c = new Coalescer({ dataSource: ds(), redis: redisUrl(), namespace: `${namespace}-reg`, logger: testLogger() });
    try {
      c.parent(TgOrder, { recompute: noop });
      expect(() => c.child(TgLine, { parent: TgOrder, foreignKey: 'orderId', capture: 'rows' as never })).toThrow(
        /child TgLine \(parent TgOrder\): capture must be one of 'subscriber', 'triggers', got "rows"/,
      );
      c.child(TgLine, { parent: TgOrder, foreignKey: 'orderId' });
      c.parent(TgKeyParent, { recompute: noop });
      expect(() => c.child(TgLine, { parent: TgKeyParent, foreignKey: 'qty', capture: 'triggers' })).toThrow(
        /child TgLine \(parent TgKeyParent\): capture 'triggers' differs from the 'subscriber' of its earlier child\(\) call/,
      );
      expect(() => c.child(TgNote, { parent: TgOrder, via: 'tags', capture: 'triggers' })).toThrow(
        /via "tags" cannot use capture 'triggers'/,
      );
      expect(() => c.triggerMigration()).toThrow(/no child is registered with capture 'triggers'.*registered: TgLine/);
      expect(() => c.triggerMigration(['Nope'])).toThrow(RegistrationError);
      expect(() => c.triggerMigration(['Nope'])).toThrow(
        /Nope is not an entity of this DataSource \(registered children: TgLine\)/,
      );
      expect(() => c.triggerMigration([TgOrder])).toThrow(/TgOrder is not a registered child \(registered children: TgLine\)/);
      expect(() => c.triggerMigration([TgLine], { name: '1bad' })).toThrow(/option "name" = "1bad"/);
      // A child still captured by the subscriber may get its triggers first (a rollout).
      expect(c.triggerStatements([TgLine]).up.join('\n')).toContain('"tg_line"');
    } finally {
      await c.close();
    }
  });
});

/**
 * The trigger function an earlier version's migration installed on the shop lines: the same
 * outbox rows, then a NOTIFY in the writing transaction.
 */
function notifyingFunction(namespace: string): string {
  return `CREATE OR REPLACE FUNCTION "coalesce_shop_order_line_mark"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $coalesce$
DECLARE
  marked integer;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "coalesce_outbox" (namespace, member, increment, base)
    SELECT DISTINCT '${namespace}', v.member, 1, v.base
      FROM coalesce_new
     CROSS JOIN LATERAL (VALUES ('Order:' || coalesce_new."order_id"::text, 0::double precision)) AS v(member, base)
     WHERE v.member IS NOT NULL;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO "coalesce_outbox" (namespace, member, increment, base)
    SELECT DISTINCT '${namespace}', v.member, 1, v.base
      FROM coalesce_old
     CROSS JOIN LATERAL (VALUES ('Order:' || coalesce_old."order_id"::text, 0::double precision)) AS v(member, base)
     WHERE v.member IS NOT NULL;
  ELSE
    INSERT INTO "coalesce_outbox" (namespace, member, increment, base)
    SELECT DISTINCT '${namespace}', v.member, 1, v.base
      FROM coalesce_old FULL JOIN coalesce_new ON coalesce_new."id" = coalesce_old."id"
     CROSS JOIN LATERAL (VALUES ('Order:' || coalesce_old."order_id"::text, 0::double precision),
                                ('Order:' || coalesce_new."order_id"::text, 0::double precision)) AS v(member, base)
     WHERE v.member IS NOT NULL
       AND ROW(coalesce_old.*)::text IS DISTINCT FROM ROW(coalesce_new.*)::text;
  END IF;
  GET DIAGNOSTICS marked = ROW_COUNT;
  IF marked > 0 THEN
    PERFORM pg_notify('coalesce_outbox', '${namespace}');
  END IF;
  RETURN NULL;
END
$coalesce$`;
}

describe('triggers an earlier version made, which notify (PostgreSQL)', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  let raw: Client;
  const namespace = `test-trig-old-${suffix()}`;
  const ds = (): DataSource => db.dataSource;
  const lines = (): string => `"${db.schema}".shop_order_line`;

  beforeAll(async () => {
    db = await createTestDb('triggers_notify');
    // The poll runs once at start, then not for a minute: what reaches Redis sooner came
    // through the listen connection.
    coalescer = new Coalescer({
      dataSource: ds(),
      redis: redisUrl(),
      namespace,
      logger: testLogger(),
      relayPoll: { minMs: 60_000, maxMs: 60_000 },
    });
    coalescer.parent<number>(Order, { recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids) });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId', capture: 'triggers' });
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
    await ds().query(notifyingFunction(namespace));
    await coalescer.attach();
    raw = new Client({ connectionString: databaseUrl() });
    await raw.connect();
  });
  afterAll(async () => {
    await raw?.end();
    if (coalescer) await dispose(coalescer);
    await db?.destroy();
  });

  it('their notification relays the commit at once, as before', async () => {
    const [a] = await seedOrders(ds(), 1, 2);
    await settle(coalescer);
    const heard = await witness(namespace);
    await raw.query(`UPDATE ${lines()} SET qty = qty + 1 WHERE order_id = $1`, [a]);
    await waitFor(async () => (await heat(coalescer))[`Order:${a}`] === 1, `Order:${a} relayed on the notification`);
    expect(await heard.close()).toEqual([OUTBOX_CHANNEL]);
    await coalescer.drain();
    expect(await countMismatches(ds().manager, [a as number])).toBe(0);
  });

  it('the migration generated again replaces their function by one that does not notify', async () => {
    const [a] = await seedOrders(ds(), 1, 1);
    await settle(coalescer);
    await runMigration(ds(), coalescer.triggerMigration(), 'up');
    const heard = await witness(namespace);
    const from = await lastRow(ds());
    await raw.query(`DELETE FROM ${lines()} WHERE order_id = $1`, [a]);
    expect(await marksSince(ds(), namespace, from)).toEqual({ [`Order:${a}`]: 1 });
    expect(await heard.close()).toEqual([]);
    // The drain relays what the poll (once a minute here) has not yet.
    await coalescer.drain();
    expect(await countMismatches(ds().manager, [a as number])).toBe(0);
  });
});

describe('coalesce triggers (the command)', () => {
  const root = join(__dirname, '..', '..');
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const app = join(root, 'test', 'fixtures', 'shop-app.cjs');
  const namespace = `test-trig-cli-${suffix()}`;
  let db: TestDb;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createTestDb('triggers_cli');
    dir = mkdtempSync(join(tmpdir(), 'coalesce-triggers-'));
    env = {
      ...process.env,
      DATABASE_URL: databaseUrl(),
      REDIS_URL: redisUrl(),
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

  it('writes a JavaScript migration that TypeORM loads, runs and reverts', async () => {
    const r = await run(['triggers', 'OrderLine', '--out', join(dir, 'cjs'), '--name', 'LineTriggers', '--js']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const file = r.stdout.trim();
    expect(file).toMatch(/cjs\/\d{13}-LineTriggers\.js$/);
    expect(readFileSync(file, 'utf8')).toContain('module.exports');

    const runner = new DataSource({
      type: 'postgres',
      url: databaseUrl(),
      schema: db.schema,
      entities: [Order, OrderLine],
      migrations: [file],
      extra: { options: `-c search_path=${db.schema}` },
    });
    await runner.initialize();
    try {
      const ran = await runner.runMigrations();
      expect(ran.map((m) => m.name)).toEqual([expect.stringMatching(/^LineTriggers\d{13}$/)]);
      const [a] = await seedOrders(runner, 1, 2);
      const from = await lastRow(runner);
      await runner.query(`DELETE FROM shop_order_line WHERE order_id = $1`, [a]);
      expect(await marksSince(runner, namespace, from)).toEqual({ [`Order:${a}`]: 1 });
      await runner.undoLastMigration();
      const [n] = (await runner.query(
        `SELECT count(*)::int AS n FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace s ON s.oid = c.relnamespace
          WHERE s.nspname = $1 AND t.tgname LIKE 'coalesce%'`,
        [db.schema],
      )) as { n: number }[];
      expect(n?.n).toBe(0);
    } finally {
      await runner.destroy();
    }
  });

  it('writes an ES module where the folder is one, and TypeScript by default', async () => {
    const esm = join(dir, 'esm');
    const made = await run(['triggers', '--out', esm, '--js']);
    expect(made.code).toBe(0);
    writeFileSync(join(esm, 'package.json'), '{"type":"module"}');
    const again = await run(['triggers', '--out', esm, '--js', '--name', 'Again']);
    expect(again.code).toBe(0);
    const loaded = (await import(pathToFileURL(again.stdout.trim()).href)) as Record<string, unknown>;
    expect(Object.keys(loaded)).toEqual([expect.stringMatching(/^Again\d{13}$/)]);
    const ts = await run(['triggers', '--out', join(dir, 'ts')]);
    expect(ts.code).toBe(0);
    const text = readFileSync(ts.stdout.trim(), 'utf8');
    expect(text).toContain("import type { MigrationInterface, QueryRunner } from 'typeorm';");
    expect(text).toContain('CREATE TRIGGER "coalesce_shop_order_line_upd" AFTER UPDATE');
  });

  it('--drop prints the DROP statements; an unknown child is a usage error naming it', async () => {
    const drop = await run(['triggers', '--drop']);
    expect(drop.code).toBe(0);
    expect(drop.stdout.trim().split('\n')).toEqual([
      `DROP TRIGGER IF EXISTS "coalesce_shop_order_line_ins" ON "${db.schema}"."shop_order_line";`,
      `DROP TRIGGER IF EXISTS "coalesce_shop_order_line_upd" ON "${db.schema}"."shop_order_line";`,
      `DROP TRIGGER IF EXISTS "coalesce_shop_order_line_del" ON "${db.schema}"."shop_order_line";`,
      `DROP FUNCTION IF EXISTS "${db.schema}"."coalesce_shop_order_line_mark"();`,
    ]);
    const bad = await run(['triggers', 'OrderLnie']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/OrderLnie is not an entity of this DataSource \(registered children: OrderLine\)/);
  });
});
