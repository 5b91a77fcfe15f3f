import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { In, type DataSource } from 'typeorm';
import {
  Coalescer,
  coalescerMetrics,
  ConfigError,
  count,
  RegistrationError,
  sum,
  type ParentId,
  type VerifyResult,
} from '../../src';
import {
  createTestDb,
  databaseUrl,
  DIALECTS,
  disposeAll,
  mysqlUrl,
  Order,
  OrderLine,
  redisUrl,
  suffix,
  testLogger,
  type TestDb,
  runCli,
  type CliRun,
} from '../support';

const root = join(__dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const app = join(root, 'test', 'fixtures', 'shop-aggregates-app.cjs');

const SHOP_AGGREGATES = { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) };

/** Orders with `lines` lines each, through TypeORM (portable); returns their ids in order. */
async function seed(ds: DataSource, n: number, lines: number): Promise<number[]> {
  const orders = await ds.getRepository(Order).save(Array.from({ length: n }, (_, i) => ({ customer: `c${i}` })));
  const rows = orders.flatMap((o, i) =>
    Array.from({ length: lines }, (_, j) => ({ orderId: o.id, sku: `s${j}`, qty: 1 + ((i + j) % 5), unitPrice: '2.50' })),
  );
  for (let i = 0; i < rows.length; i += 500) await ds.getRepository(OrderLine).insert(rows.slice(i, i + 500));
  return orders.map((o) => o.id).sort((a, b) => a - b);
}

/**
 * Writes derived columns behind the library's back, as another program would (raw SQL: no
 * subscriber sees it, so nothing marks the orders): the drift verify must find.
 */
async function corrupt(ds: DataSource, ids: readonly number[], set: { total?: string; lineCount?: number }): Promise<void> {
  const mysql = ds.options.type !== 'postgres';
  const p = (n: number): string => (mysql ? '?' : `$${n}`);
  const columns: [string, unknown][] = [];
  if (set.total !== undefined) columns.push(['total', set.total]);
  if (set.lineCount !== undefined) columns.push(['line_count', set.lineCount]);
  const assignments = columns.map(([c], i) => `${c} = ${p(i + 1)}`).join(', ');
  const list = ids.map((_id, i) => p(columns.length + i + 1)).join(', ');
  await ds.query(`UPDATE shop_order SET ${assignments} WHERE id IN (${list})`, [...columns.map(([, v]) => v), ...ids]);
}

/** Total and line count of `ids` from their live lines, computed in JS (for `expected`). */
async function fromLines(ds: DataSource, ids: ParentId[]): Promise<Map<ParentId, Record<string, unknown>>> {
  const lines = await ds.getRepository(OrderLine).findBy({ orderId: In(ids) });
  const out = new Map<ParentId, Record<string, unknown>>(ids.map((id) => [id, { total: '0.00', lineCount: 0 }]));
  for (const id of ids) {
    const mine = lines.filter((l) => l.orderId === Number(id));
    const cents = mine.reduce((s, l) => s + l.qty * Math.round(Number(l.unitPrice) * 100), 0);
    out.set(id, { total: (cents / 100).toFixed(2), lineCount: mine.length });
  }
  return out;
}

describe.each(DIALECTS)('verify on %s', (dialect) => {
  let db: TestDb;
  const open: Coalescer[] = [];
  beforeAll(async () => {
    db = await createTestDb(`verify_${dialect}`, { dialect });
  });
  afterAll(async () => {
    await disposeAll(open);
    await db.destroy();
  });
  const make = (namespace = `verify-${suffix()}`, options: { markTimeoutMs?: number } = {}): Coalescer => {
    const c = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace, logger: testLogger(), ...options });
    open.push(c);
    return c;
  };
  const shop = (namespace?: string): Coalescer => {
    const c = make(namespace).parent(Order, { aggregates: SHOP_AGGREGATES });
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    return c;
  };
  const orders = () => db.dataSource.getRepository(Order);

  it('finds injected drift, in every mode; repair marks it and a drain heals it; metrics count it', async () => {
    const c = shop();
    const metrics = coalescerMetrics(c);
    const events: VerifyResult[] = [];
    c.on('verified', (r) => events.push(r));
    const ids = await seed(db.dataSource, 30, 3);
    await c.mark(Order, ids);
    await c.drain();
    const clean = await c.verify(Order, { ids });
    expect(clean).toMatchObject({ parent: 'Order', checked: 30, drifted: 0, skipped: 0, examples: [], repaired: 0 });

    const [a, b, d] = [ids[3]!, ids[17]!, ids[29]!];
    const before = await orders().findOneByOrFail({ id: a });
    await corrupt(db.dataSource, [a], { total: '999.99' });
    await corrupt(db.dataSource, [b], { lineCount: 42 });
    await corrupt(db.dataSource, [d], { total: '0.00', lineCount: 0 });
    const found = await c.verify(Order, { ids, recheckMs: 20 });
    expect(found).toMatchObject({ checked: 30, drifted: 3, skipped: 0, repaired: 0 });
    expect(found.examples).toEqual(
      expect.arrayContaining([
        { id: a, field: 'total', stored: '999.99', expected: expect.any(String) },
        // Both as the column holds them: numbers, never a number beside text.
        { id: b, field: 'lineCount', stored: 42, expected: 3 },
        { id: d, field: 'lineCount', stored: 0, expected: 3 },
        { id: d, field: 'total', stored: '0.00', expected: expect.stringMatching(/^\d+\.\d+$/) },
      ]),
    );
    expect(found.examples).toHaveLength(4);
    const total = found.examples.find((e) => e.id === a && e.field === 'total');
    expect(Number(total?.expected)).toBe(Number(before.total));

    // Every row by keyset pages, the given ids, a random sample.
    const paged = await c.verify(Order, { batch: 7, recheckMs: 20 });
    expect(paged).toMatchObject({ checked: 30, drifted: 3 });
    const some = await c.verify(Order, { ids: [a, ids[0]!, 987654], recheckMs: 20 });
    expect(some).toMatchObject({ checked: 2, drifted: 1 });
    const sample = await c.verify(Order, { sample: 10, batch: 4, recheckMs: 20 });
    expect(sample.checked).toBe(10);
    expect(sample.drifted).toBeLessThanOrEqual(3);

    const progress: number[] = [];
    const repaired = await c.verify(Order, {
      repair: true,
      batch: 10,
      recheckMs: 20,
      onProgress: (p) => progress.push(p.checked),
    });
    expect(repaired).toMatchObject({ checked: 30, drifted: 3, repaired: 3 });
    // One call per batch, and one once the last rechecks are done.
    expect(progress).toEqual([10, 20, 30, 30]);
    // Marked, not written: the rows are still wrong until the drain recomputes them.
    expect((await orders().findOneByOrFail({ id: a })).total).toBe('999.99');
    expect((await c.stats()).pending).toBe(3);
    // While pending they are not drift: skipped.
    expect(await c.verify(Order, { ids, recheckMs: 20 })).toMatchObject({ drifted: 0, skipped: 3 });
    expect((await c.drain()).recomputed).toBe(3);
    expect(await c.verify(Order)).toMatchObject({ checked: 30, drifted: 0, skipped: 0 });

    expect(events.map((e) => e.drifted)).toEqual([0, 3, 3, 1, sample.drifted, 3, 0, 0]);
    const text = await metrics.registry.metrics();
    expect(text).toContain(`coalesce_drift_total{parent="Order"} ${10 + sample.drifted}`);
    expect(text).toContain(`coalesce_verify_checked_total ${30 * 6 + 2 + 10}`);
    metrics.close();
  });

  it('a drifted parent whose recompute is running (leased) or pending is skipped, not drift', async () => {
    const ns = `verify-${suffix()}`;
    const c = shop(ns);
    let open_: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open_ = resolve));
    let started: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (started = resolve));
    // Another worker of the namespace whose recompute holds its lease until the gate opens.
    const worker = make(ns).parent<number>(Order, {
      aggregates: SHOP_AGGREGATES,
      recomputeMany: async () => {
        started();
        await gate;
      },
    });
    const ids = await seed(db.dataSource, 4, 2);
    await corrupt(db.dataSource, ids, { total: '1.00' });
    await c.mark(Order, ids.slice(0, 2));
    const drain = worker.drain();
    try {
      await running;
      await c.mark(Order, ids[2]!);
      // ids[0..1] leased, ids[2] pending, ids[3] drifted with nothing coming.
      const r = await c.verify(Order, { ids, recheckMs: 20 });
      expect(r).toMatchObject({ checked: 4, drifted: 1, skipped: 3 });
      expect(new Set(r.examples.map((e) => e.id))).toEqual(new Set([ids[3]]));
    } finally {
      open_();
    }
    await drain;
    await c.mark(Order, ids[3]!);
    await c.drain();
    expect(await c.verify(Order, { ids })).toMatchObject({ drifted: 0, skipped: 0 });
  });

  it('a parent without aggregates gives expected(); with neither, verify says so; bad options are named', async () => {
    const c = make().parent<number>(Order, {
      recompute: async () => undefined,
      expected: (ids) => fromLines(db.dataSource, ids),
    });
    const ids = await seed(db.dataSource, 6, 2);
    const fresh = await fromLines(db.dataSource, ids);
    for (const [id, fields] of fresh) await orders().update(Number(id), fields);
    expect(await c.verify(Order, { ids })).toMatchObject({ checked: 6, drifted: 0 });
    await corrupt(db.dataSource, [ids[1]!], { lineCount: 7 });
    const r = await c.verify(Order, { ids, recheckMs: 20 });
    expect(r).toMatchObject({ checked: 6, drifted: 1, examples: [{ id: ids[1], field: 'lineCount', stored: 7, expected: 2 }] });

    const neither = make().parent(Order, { recompute: async () => undefined });
    await expect(neither.verify(Order)).rejects.toThrow(RegistrationError);
    await expect(neither.verify(Order)).rejects.toThrow(/verify\(\): parent Order has neither aggregates nor expected/);
    const wrong = make().parent<number>(Order, {
      recompute: async () => undefined,
      expected: async (list) => new Map(list.map((id) => [id, { totl: 1 }])),
    });
    await expect(wrong.verify(Order, { ids })).rejects.toThrow(
      /expected\(\) of Order returned field "totl", which is not a column property/,
    );
    await expect(c.verify(Order, { batch: 0 })).rejects.toThrow(ConfigError);
    await expect(c.verify(Order, { batch: 0 })).rejects.toThrow(
      'invalid verify option "batch" = 0: expected an integer from 1 to 100000',
    );
    await expect(c.verify(Order, { ids, sample: 3 })).rejects.toThrow(/give ids or sample, not both/);
    await expect(c.verify('Invoice')).rejects.toThrow(/Invoice is not a registered parent/);
  });

  it('under concurrent writes and drains, reports exactly the injected drift and never a parent in flight', async () => {
    const ns = `verify-${suffix()}`;
    const c = shop(ns);
    await c.attach();
    // The drainers' recompute holds its transaction (and lease) a while after the aggregates are
    // written, so verifies meet parents in flight whose new values are not committed yet.
    const drainer = make(ns).parent<number>(Order, {
      aggregates: SHOP_AGGREGATES,
      recomputeMany: () => sleep(5 + Math.floor(Math.random() * 25)),
    });
    const ids = await seed(db.dataSource, 40, 2);
    await c.mark(Order, ids);
    await drainer.drain({ concurrency: 2 });
    const hot = ids.slice(0, 30);
    const corrupted = ids.slice(35);
    await corrupt(db.dataSource, corrupted, { lineCount: 1000 });

    let stop = false;
    const writer = async (w: number): Promise<number> => {
      let saves = 0;
      for (let i = 0; !stop; i += 1) {
        const orderId = hot[(w * 7 + i * 3) % hot.length]!;
        await db.dataSource.transaction(async (m) => {
          const mine = await m.getRepository(OrderLine).findBy({ orderId });
          if (i % 4 === 0 || mine.length === 0) {
            await m.save(m.create(OrderLine, { orderId, sku: `w${w}-${i}`, qty: 1 + (i % 4), unitPrice: '1.25' }));
          } else if (i % 4 === 1) {
            const line = mine[i % mine.length]!;
            line.qty = 1 + ((line.qty + 1) % 6);
            await m.save(line);
          } else if (i % 4 === 2) {
            await m.softRemove(mine[i % mine.length]!);
          } else {
            // A move: both orders change.
            const line = mine[i % mine.length]!;
            line.orderId = hot[(i * 11) % hot.length]!;
            await m.save(line);
          }
        });
        saves += 1;
      }
      return saves;
    };
    const drains = (async () => {
      let n = 0;
      while (!stop) {
        n += (await drainer.drain({ concurrency: 2 })).recomputed;
        await sleep(10);
      }
      return n;
    })();
    const writers = Promise.all([0, 1, 2].map(writer));
    const results: VerifyResult[] = [];
    const until = Date.now() + 6_000;
    while (Date.now() < until) results.push(await c.verify(Order, { ids, batch: 8 }));
    stop = true;
    const [saves, recomputed] = await Promise.all([writers, drains]);
    expect(saves.reduce((a, b) => a + b, 0)).toBeGreaterThan(50);
    expect(recomputed).toBeGreaterThan(0);
    expect(results.length).toBeGreaterThan(1);
    for (const r of results) {
      expect(r.checked).toBe(40);
      expect(r.drifted).toBe(corrupted.length);
      expect(r.examples.map((e) => Number(e.id)).sort((a, b) => a - b)).toEqual(corrupted);
    }
    // Once the writes stop and the drain is done, everything but the corrupted rows is fresh.
    await c.flushed();
    await drainer.drain();
    expect(await c.verify(Order, { ids, recheckMs: 20 })).toMatchObject({ checked: 40, drifted: corrupted.length, skipped: 0 });
  });

  it('coalesce verify: exit 1 on drift, --repair marks it (exit 0), --json, --sample', async () => {
    // A database of its own: the command checks every row.
    const own = await createTestDb(`verify_cli_${dialect}`, { dialect });
    const ns = `verify-cli-${suffix()}`;
    const c = new Coalescer({ dataSource: own.dataSource, redis: redisUrl(), namespace: ns, logger: testLogger() });
    open.push(c);
    c.parent(Order, { aggregates: SHOP_AGGREGATES });
    const ids = await seed(own.dataSource, 12, 2);
    await c.mark(Order, ids);
    await c.drain();
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl(),
      MYSQL_URL: mysqlUrl(),
      REDIS_URL: redisUrl(),
      TEST_DIALECT: dialect,
      TEST_SCHEMA: own.schema,
      TEST_NAMESPACE: ns,
    };
    const run = (...args: string[]): Promise<CliRun> => runCli(cli, ['--app', app, ...args], env);
    const ok = await run('verify', 'Order');
    expect(ok.stderr).toBe('');
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain('checked 12 Order parents');
    expect(ok.stdout).toContain('drifted 0, skipped 0');

    await corrupt(own.dataSource, [ids[4]!], { total: '123.45', lineCount: 999 });
    const bad = await run('verify', 'Order', '--batch', '5');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('drifted 1, skipped 0');
    // Both values the same way: decimals as exact text, counts as numbers.
    expect(bad.stdout).toMatch(new RegExp(`Order:${ids[4]}  total  stored "123\\.45"  expected "\\d+\\.\\d+"\n`));
    expect(bad.stdout).toContain(`Order:${ids[4]}  lineCount  stored 999  expected 2\n`);
    expect(bad.stdout).toContain('run again with --repair');

    const json = await run('verify', 'Order', '--json', '--sample', '3');
    expect(JSON.parse(json.stdout)).toMatchObject({ parent: 'Order', checked: 3 });

    const fixed = await run('verify', 'Order', '--repair', '--json');
    expect(fixed.code).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({
      drifted: 1,
      repaired: 1,
      examples: [
        { id: ids[4], field: 'total', stored: '123.45' },
        { id: ids[4], field: 'lineCount', stored: 999, expected: 2 },
      ],
    });
    expect(await c.hottest(5)).toEqual([{ member: `Order:${ids[4]}`, heat: 1 }]);
    await c.drain();
    expect((await run('verify', 'Order')).code).toBe(0);

    const usage = await run('verify', 'Invoice');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/Invoice is not a registered parent/);
    expect((await run('verify', 'Order', '--batch', '0')).code).toBe(2);
    await own.destroy();
  });
});
