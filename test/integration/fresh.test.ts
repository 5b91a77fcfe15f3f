import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FreshTimeoutError, ParentDeadError, type Coalescer, type LiveEvent, type Runner } from '../../src';
import {
  countMismatches,
  createTestDb,
  databaseUrl,
  Order,
  OrderLine,
  redisUrl,
  seedOrders,
  shopCoalescer,
  waitFor,
  type TestDb,
} from '../support';

const root = join(__dirname, '..', '..');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('read your writes: fresh(), state(), live events', () => {
  let db: TestDb;
  const closing: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    db = await createTestDb('fresh');
  });
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
    await db.destroy();
  });

  function coalescer(options: Parameters<typeof shopCoalescer>[1] = {}): Coalescer {
    const c = shopCoalescer(db.dataSource, options);
    closing.push(async () => {
      c.detach();
      await c.reset();
      await c.close();
    });
    return c;
  }

  function runner(c: Coalescer): Runner {
    const r = c.runner({ schedule: '* * * * * *', concurrency: 2 });
    closing.push(() => r.stop());
    return r;
  }

  const total = async (orderId: number): Promise<string> =>
    ((await db.dataSource.query('SELECT total FROM shop_order WHERE id = $1', [orderId])) as { total: string }[])[0]?.total ?? '';

  it('after a save, fresh() resolves once a recompute that saw the save is acknowledged', async () => {
    const c = coalescer();
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
    const r = runner(c);
    r.start();
    for (let i = 1; i <= 3; i += 1) {
      await db.dataSource.getRepository(OrderLine).save({ orderId, sku: `f${i}`, qty: i, unitPrice: '10.00' });
      await c.fresh(Order, orderId, { timeoutMs: 10_000 });
      // The value read right after fresh() includes the line just saved.
      expect(Number(await total(orderId))).toBe(10 * ((i * (i + 1)) / 2));
    }
    expect(await c.state(Order, orderId)).toMatchObject({ waiting: false, inflight: false, heat: 0, dead: null });
  });

  it('fresh() resolves at once when nothing waits, and times out naming the parent when nobody drains', async () => {
    const c = coalescer();
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
    await c.fresh(Order, orderId, { timeoutMs: 0 });
    await db.dataSource.getRepository(OrderLine).save({ orderId, sku: 'x', qty: 1, unitPrice: '1.00' });
    const error = await c.fresh(Order, orderId, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FreshTimeoutError);
    expect((error as Error).message).toMatch(
      new RegExp(`Order:${orderId} was not recomputed within 300 ms \\(pending with heat 1`),
    );
    const s = await c.state(Order, orderId);
    expect(s).toMatchObject({ member: `Order:${orderId}`, waiting: true, settling: false, heat: 1, inflight: false });
    expect(s.firstMarkAgeMs).not.toBeNull();
  });

  it('fresh({ now: true }) recomputes in the caller at once, never alongside a runner recomputing the same parents', async () => {
    let running = 0;
    let overlaps = 0;
    const slow = async (): Promise<void> => {
      running += 1;
      if (running > 1) overlaps += 1;
      await sleep(40);
      running -= 1;
    };
    // One order, many writers of it: the runner and fresh({ now }) race for the same parent.
    const c = coalescer({ before: slow });
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
    const r = runner(c);
    r.start();
    for (let i = 0; i < 8; i += 1) {
      await db.dataSource.getRepository(OrderLine).save({ orderId, sku: `n${i}`, qty: 1, unitPrice: '2.00' });
      await c.fresh(Order, orderId, { now: true, timeoutMs: 10_000 });
      expect(Number(await total(orderId))).toBe(2 * (i + 1));
    }
    expect(overlaps).toBe(0);
    await r.stop();
    // Without a runner at all, now: true is enough.
    await db.dataSource.getRepository(OrderLine).save({ orderId, sku: 'last', qty: 1, unitPrice: '2.00' });
    await c.fresh(Order, orderId, { now: true, timeoutMs: 5_000 });
    expect(Number(await total(orderId))).toBe(18);
  });

  it('fresh({ now: true }) of a parent another caller is recomputing, no runner: it resolves after that recompute, with one of its own', async () => {
    let running = 0;
    let overlaps = 0;
    const c = coalescer({
      before: async () => {
        running += 1;
        if (running > 1) overlaps += 1;
        await sleep(400);
        running -= 1;
      },
    });
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
    const lines = db.dataSource.getRepository(OrderLine);
    const first = (async () => {
      await lines.save({ orderId, sku: 'a', qty: 1, unitPrice: '1.00' });
      await c.fresh(Order, orderId, { now: true, timeoutMs: 10_000 });
    })();
    // The second save lands while the first caller's recompute runs: that one does not cover it,
    // and the parent then waits out its minimum interval, which nobody here ends but this caller.
    await waitFor(() => running === 1, 'the first recompute');
    await lines.save({ orderId, sku: 'b', qty: 1, unitPrice: '1.00' });
    await c.fresh(Order, orderId, { now: true, timeoutMs: 5_000 });
    expect(Number(await total(orderId))).toBe(2);
    await first;
    expect(overlaps).toBe(0);
  });

  it('fresh() of a parent whose recompute keeps failing rejects with a ParentDeadError', async () => {
    const c = coalescer({
      retry: { attempts: 1, baseMs: 0, maxMs: 0 },
      before: () => {
        throw new Error('the order table is locked');
      },
    });
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
    await c.mark(Order, orderId);
    const waiting = c.fresh(Order, orderId, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    await c.drain();
    const error = await waiting;
    expect(error).toBeInstanceOf(ParentDeadError);
    expect((error as Error).message).toMatch(/the order table is locked/);
    expect((await c.state(Order, orderId)).dead).toMatchObject({ attempts: 1 });
  });

  it('live events reach every subscriber, another process included (coalesce watch --json)', async () => {
    const c = coalescer();
    const ids = await seedOrders(db.dataSource, 5, 1);
    const here: LiveEvent[] = [];
    const subscription = await c.subscribe((e) => here.push(e));
    closing.push(() => subscription.close());
    const watch = spawn(
      process.execPath,
      [join(root, 'dist', 'src', 'cli', 'main.js'), '--app', join(root, 'test', 'fixtures', 'shop-app.cjs'), 'watch', '--json'],
      {
        env: {
          ...process.env,
          DATABASE_URL: databaseUrl(),
          REDIS_URL: redisUrl(),
          TEST_SCHEMA: db.schema,
          TEST_NAMESPACE: c.namespace,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    closing.push(async () => watch.kill('SIGKILL'));
    let out = '';
    let err = '';
    watch.stdout.on('data', (d: Buffer) => (out += d.toString()));
    watch.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await waitFor(() => err.includes('watching'), 'coalesce watch to start');
    // Publishers look for listeners about once a second.
    await sleep(1_200);
    await c.mark(Order, ids);
    await c.drain();
    const seen = (): LiveEvent[] =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LiveEvent);
    await waitFor(
      () => seen().filter((e) => e.type === 'recomputed').length === 5 && seen().some((e) => e.type === 'drained'),
      'the other process to see 5 recomputes and the drain',
    );
    const there = seen();
    expect(new Set(there.filter((e) => e.type === 'recomputed').map((e) => (e as { member: string }).member))).toEqual(
      new Set(ids.map((id) => `Order:${id}`)),
    );
    expect(there.some((e) => e.type === 'drained')).toBe(true);
    await waitFor(() => here.filter((e) => e.type === 'recomputed').length === 5, 'this process to see them too');
    watch.kill('SIGTERM');
    const code = await new Promise((resolve) => watch.on('exit', resolve));
    expect(code).toBe(0);
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);
  });
});
