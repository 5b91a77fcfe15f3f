import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { In } from 'typeorm';
import { Coalescer, ConnectionError, FreshTimeoutError, LeaseLostError, type Housework } from '../../src';
import {
  countMismatches,
  createTestDb,
  Order,
  OrderLine,
  recomputeOrders,
  RecomputeLog,
  seedOrders,
  shopCoalescer,
  suffix,
  testLogger,
  waitFor,
  type TestDb,
  internals,
} from '../support';
import { OwnRedis } from '../support/servers';

/** Stale orders among `ids`: their stored total or line count differ from their lines. */
const stale = (db: TestDb, ids: number[]) => countMismatches(db.dataSource.manager, ids);

/** Drains until the outbox is relayed and nothing is pending. */
async function drainOutbox(c: Coalescer, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      await c.drain({ concurrency: 4 });
      return (await c.stats()).pending === 0 && (await c.outbox.size()) === 0;
    },
    'the outbox to be relayed and drained',
    timeoutMs,
  );
}

describe('Redis failing, and Redis losing its data', () => {
  let db: TestDb;
  const closing: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    db = await createTestDb('redisloss', { poolSize: 20 });
  });
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
    await db.destroy();
  });

  async function ownRedis(persist: boolean): Promise<OwnRedis> {
    const redis = new OwnRedis({ persist });
    closing.push(() => redis.destroy());
    await redis.start();
    return redis;
  }

  /** A database of the test's own: a rebuild marks every order of its table. */
  async function ownDb(name: string): Promise<TestDb> {
    const own = await createTestDb(name);
    closing.push(() => own.destroy());
    return own;
  }

  function coalescer(redis: OwnRedis, options: Parameters<typeof shopCoalescer>[1] = {}, on: TestDb = db): Coalescer {
    const c = shopCoalescer(on.dataSource, { redis: redis.url, markTimeoutMs: 300, leaseMs: 1_000, ...options });
    closing.push(() => c.close());
    return c;
  }

  it('Redis down: stats(), state(), hottest() and the dead letters reject with a ConnectionError naming host:port; mark() keeps the marks', async () => {
    const redis = await ownRedis(true);
    const c = coalescer(redis);
    const [id] = await seedOrders(db.dataSource, 1, 1);
    await c.mark(Order, id as number);
    expect((await c.stats()).pending).toBe(1);
    await redis.kill();
    const where = `127.0.0.1:${redis.port}`;
    for (const [what, call] of [
      ['stats()', () => c.stats()],
      ['state()', () => c.state(Order, id as number)],
      ['hottest()', () => c.hottest()],
      ['dead.list()', () => c.dead.list()],
      ['dead.retry()', () => c.dead.retry('all')],
    ] as const) {
      const error = await (call as () => Promise<unknown>)().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(ConnectionError);
      expect((error as Error).message, what).toContain(what);
      expect((error as Error).message, what).toContain(where);
    }
    // A mark never throws for Redis: it waits in the outbox.
    expect(await c.mark(Order, id as number)).toBe(1);
    await c.flushed();
    expect(await c.outbox.size()).toBe(1);
  });

  it('Redis on a closed port: every call that needs Redis names host:port and the refusal, never "max retries per request"', async () => {
    // A port that was just free: nothing listens on it.
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port: taken } = server.address() as AddressInfo;
        server.close(() => resolve(taken));
      });
    });
    const warnings: { err?: string; msg: string }[] = [];
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          warnings.push(JSON.parse(chunk.toString()) as { err?: string; msg: string });
          done();
        },
      }),
    );
    const c = shopCoalescer(db.dataSource, { redis: `redis://127.0.0.1:${port}`, markTimeoutMs: 200, logger });
    closing.push(() => c.close());
    const [id] = (await seedOrders(db.dataSource, 1, 1)) as [number];
    // ioredis waits longer before each reconnection: a few calls are enough.
    for (const [what, call] of [
      ['stats()', () => c.stats()],
      ['drain', () => c.drain()],
      ['ping()', () => c.ping()],
      ['fresh()', () => c.fresh(Order, id, { timeoutMs: 5_000 })],
      ['dead.list()', () => c.dead.list()],
    ] as const) {
      const error = await (call as () => Promise<unknown>)().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(ConnectionError);
      const message = (error as Error).message;
      expect(message, what).toContain(
        `${what}: cannot reach Redis at 127.0.0.1:${port}: connection refused (is redis-server running?`,
      );
      expect(message, what).not.toMatch(/max retries/i);
      expect(message.split('\n'), what).toHaveLength(1);
    }
    // A mark goes to the outbox, and the warning says why Redis did not take it.
    expect(await c.mark(Order, id)).toBe(1);
    await c.flushed();
    const outage = warnings.find((w) => w.msg.startsWith('Redis does not take marks'));
    // Down between two attempts, or trying again now.
    expect(outage?.err).toMatch(
      new RegExp(
        `^Error: Redis at 127\\.0\\.0\\.1:${port} (is down \\(reconnecting|did not answer within 200 ms \\(markTimeoutMs): connection refused\\)$`,
      ),
    );
  });

  it('a Redis that wants a password (none given, a wrong one): calls name host:port and the refusal, and what to check', async () => {
    const redis = await ownRedis(false);
    const admin = new Redis(redis.url);
    await admin.config('SET', 'requirepass', 'sekret');
    admin.disconnect();
    const where = `127.0.0.1:${redis.port}`;
    for (const [url, reply] of [
      [redis.url, 'NOAUTH'],
      [`redis://:wrong@${where}`, 'WRONGPASS'],
    ] as const) {
      const c = shopCoalescer(db.dataSource, { redis: url, markTimeoutMs: 200 });
      closing.push(() => c.close());
      for (const [what, call] of [
        ['stats()', () => c.stats()],
        ['ping()', () => c.ping()],
        ['drain', () => c.drain()],
      ] as const) {
        const error = await (call as () => Promise<unknown>)().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error, `${reply} ${what}`).toBeInstanceOf(ConnectionError);
        expect((error as Error).message).toMatch(
          new RegExp(`^${what.replace(/[()]/g, '\\$&')}: Redis at ${where} refuses us: ${reply} .* \\(check the password: `),
        );
      }
    }
    const right = shopCoalescer(db.dataSource, { redis: `redis://:sekret@${where}` });
    closing.push(() => right.close());
    await right.ping();
  });

  /** One order, fresh; then a line of it saved while Redis is down (its mark kept in the outbox); Redis back. */
  async function savedWhileAway(c: Coalescer, redis: OwnRedis): Promise<number> {
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 1)) as [number];
    await c.drain();
    await redis.kill();
    await db.dataSource.getRepository(OrderLine).save({ orderId, sku: 'away', qty: 4, unitPrice: '2.50' });
    await c.flushed();
    await redis.start();
    return orderId;
  }

  it('a save made while Redis was down: fresh() waits for the recompute of the mark kept in the outbox, not less', async () => {
    const redis = await ownRedis(true);
    const c = coalescer(redis);
    const orderId = await savedWhileAway(c, redis);
    expect(await c.outbox.size()).toBe(1);
    expect(await c.state(Order, orderId)).toMatchObject({ waiting: true, kept: true, heat: 0 });
    // Nobody drains: the parent is stale, so fresh() must not resolve.
    await expect(c.fresh(Order, orderId, { timeoutMs: 1_000 })).rejects.toBeInstanceOf(FreshTimeoutError);
    expect(await stale(db, [orderId])).toBe(1);
    const runner = c.runner({ schedule: '* * * * * *' });
    runner.start();
    try {
      await c.fresh(Order, orderId, { timeoutMs: 20_000 });
      expect(await stale(db, [orderId])).toBe(0);
    } finally {
      await runner.stop();
    }
    c.detach();
  });

  it('verify skips a parent whose mark waits in the outbox (Redis was away), and checks it once its recompute ran', async () => {
    const redis = await ownRedis(true);
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redis.url,
      namespace: `kept-${suffix()}`,
      markTimeoutMs: 300,
      logger: testLogger(),
    });
    closing.push(() => c.close());
    c.parent<number>(Order, {
      recompute: (id, { manager }) => recomputeOrders(manager, [id]),
      // The line count from the lines themselves.
      expected: async (ids) => {
        const lines = await db.dataSource.getRepository(OrderLine).findBy({ orderId: In(ids.map(Number)) });
        return new Map(ids.map((id) => [id, { lineCount: lines.filter((l) => l.orderId === Number(id)).length }]));
      },
    });
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    const orderId = await savedWhileAway(c, redis);
    // Stale, but a recompute is on its way (the outbox keeps its mark): not drift.
    expect(await c.verify(Order, { ids: [orderId] })).toMatchObject({ checked: 1, drifted: 0, skipped: 1 });
    await c.drain();
    expect(await c.verify(Order, { ids: [orderId] })).toMatchObject({ checked: 1, drifted: 0, skipped: 0 });
    c.detach();
  });

  it('Redis killed mid-drain: drain() rejects with a ConnectionError naming Redis, the process lives, nothing is lost', async () => {
    const redis = await ownRedis(true);
    const log = new RecomputeLog();
    let done = 0;
    const c = coalescer(redis, {
      log,
      before: async () => {
        done += 1;
        await new Promise((resolve) => setTimeout(resolve, 5));
      },
    });
    const ids = await seedOrders(db.dataSource, 300, 1);
    await c.mark(Order, ids);
    const drain = c.drain({ concurrency: 4, window: 20 });
    drain.catch(() => undefined);
    await waitFor(() => done >= 40, 'the drain to be under way');
    await redis.kill();
    const error = await drain.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toContain(`127.0.0.1:${redis.port}`);
    // Back up with its data: what was claimed comes back after the leases, and all converges.
    await redis.start();
    await waitFor(async () => {
      await c.drain({ concurrency: 4 });
      const s = await c.stats();
      return s.pending + s.inflight + s.delayed === 0;
    }, 'every order to be recomputed');
    expect(await stale(db, ids)).toBe(0);
  });

  it('a worker that cannot renew its leases aborts its recomputes before the leases can pass to another worker', async () => {
    const redis = await ownRedis(true);
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redis.url,
      logger: testLogger(),
      leaseMs: 900,
      namespace: `renew-${suffix()}`,
    });
    closing.push(() => c.close());
    let started = false;
    let abortedAt: number | undefined;
    let reason: unknown;
    c.parent<number>(Order, {
      // A long recompute that honours its signal.
      recompute: (_id, { signal }) =>
        new Promise<void>((_resolve, reject) => {
          started = true;
          signal.addEventListener('abort', () => {
            abortedAt = c.clock.now();
            reason = signal.reason;
            reject(signal.reason as Error);
          });
        }),
    });
    const [orderId] = (await seedOrders(db.dataSource, 1, 1)) as [number];
    await c.mark(Order, orderId);
    const drain = c.drain().catch((e: unknown) => e);
    await waitFor(() => started, 'the recompute to start');
    // Renewals keep the lease while Redis answers...
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(abortedAt).toBeUndefined();
    // ...and once it does not (a hung server), the recompute is told to stop.
    redis.pause();
    await waitFor(() => abortedAt !== undefined, 'the recompute to be aborted', 5_000);
    redis.resume();
    expect(reason).toBeInstanceOf(LeaseLostError);
    // It was aborted while its lease still stood: nobody else could have started it yet.
    const deadline = Number(await internals(c).clients.main.zscore(c.keys.leases, `Order:${orderId}`));
    expect(deadline).toBeGreaterThan(abortedAt as number);
    await drain;
    await waitFor(async () => (await c.stats()).expired === 1, 'the lease to expire');
  });

  it('100,000 parents marked while Redis is down are all kept in the outbox, then all recomputed', async () => {
    const redis = await ownRedis(true);
    const log = new RecomputeLog();
    const c = coalescer(redis, { log, many: true });
    const ids = await seedOrders(db.dataSource, 100_000, 0);
    await redis.kill();
    expect(await c.mark(Order, ids)).toBe(100_000);
    await c.flushed();
    expect((await c.outbox.size()) ?? 0).toBe(100_000);
    await redis.start();
    await drainOutbox(c, 120_000);
    expect(log.counts.size).toBe(100_000);
    expect(ids.every((id) => log.of(id) >= 1)).toBe(true);
  }, 180_000);

  it('strict delivery: a transaction touching 20,000 parents commits while Redis is down, and nothing is lost', async () => {
    const redis = await ownRedis(true);
    const log = new RecomputeLog();
    const c = coalescer(redis, { log, many: true, delivery: 'outbox' });
    await c.attach();
    const ids = await seedOrders(db.dataSource, 20_000, 0);
    await redis.kill();
    await db.dataSource.transaction((m) =>
      m.save(
        OrderLine,
        ids.map((orderId) => m.create(OrderLine, { orderId, sku: 'bulk', qty: 2, unitPrice: '1.50' })),
        { chunk: 2_000 },
      ),
    );
    await c.flushed();
    expect(await c.outbox.size()).toBe(20_000);
    expect(await stale(db, ids)).toBe(20_000);
    await redis.start();
    await drainOutbox(c, 60_000);
    c.detach();
    expect(await stale(db, ids)).toBe(0);
  });

  for (const delivery of ['redis', 'outbox'] as const) {
    it(`Redis restarted empty (delivery '${delivery}'): the loss is found and no parent stays stale`, async () => {
      const redis = await ownRedis(false);
      const own = await ownDb(`loss_${delivery}`);
      const c = coalescer(redis, { delivery, many: true, leaseMs: 60_000 }, own);
      const works: Housework[] = [];
      c.on('housework', (w) => works.push(w));
      await c.attach();
      const ids = await seedOrders(own.dataSource, 50, 1);
      await c.mark(Order, ids);
      await c.drain();
      expect(await stale(own, ids)).toBe(0);
      // Changes whose marks are in Redis only (none drained yet) when it restarts empty.
      for (const orderId of ids.slice(0, 20)) {
        await own.dataSource.getRepository(OrderLine).save({ orderId, sku: 'late', qty: 3, unitPrice: '4.00' });
      }
      await c.flushed();
      expect((await c.stats()).pending).toBe(20);
      expect(await stale(own, ids)).toBe(20);
      await redis.restart();
      expect((await c.stats()).pending).toBe(0);
      await waitFor(async () => {
        await c.drain({ concurrency: 2 });
        return (await stale(own, ids)) === 0;
      }, 'the lost parents to be recomputed');
      expect(works.filter((w) => w.redisLost)).toHaveLength(1);
      // Default delivery marks every order again; strict delivery sends its kept rows again.
      if (delivery === 'redis') expect(works.reduce((n, w) => n + w.rebuilt, 0)).toBe(ids.length);
      else expect(works.reduce((n, w) => n + w.relayed, 0)).toBeGreaterThanOrEqual(20);
      c.detach();
      expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, outbox: 0 });
    });
  }

  it('a loss is found even when every process restarted meanwhile: the epoch is kept in the database too', async () => {
    const redis = await ownRedis(false);
    const own = await ownDb('loss_restart');
    const first = coalescer(redis, {}, own);
    await first.attach();
    const ids = await seedOrders(own.dataSource, 10, 1);
    await first.mark(Order, ids);
    await first.drain();
    for (const orderId of ids)
      await own.dataSource.getRepository(OrderLine).save({ orderId, sku: 'x', qty: 1, unitPrice: '9.00' });
    await first.flushed();
    first.detach();
    await first.close();
    await redis.restart();
    // A new process of the same namespace, knowing nothing of the last one.
    const next = coalescer(redis, { namespace: first.namespace }, own);
    const works: Housework[] = [];
    next.on('housework', (w) => works.push(w));
    await waitFor(async () => {
      await next.drain();
      return (await stale(own, ids)) === 0;
    }, 'the parents to be recomputed after the loss');
    expect(works[0]?.redisLost).toBe(true);
    // The type policies went with the data and were published again.
    expect((await internals(next).epochs.policyTypes()).has('Order')).toBe(true);
  });
});
