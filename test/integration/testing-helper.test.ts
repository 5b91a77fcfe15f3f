import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coalescer, count, sum, type CoalescerOptions } from '../../src';
import { assertNoDrift, drainUntilIdle, DriftError, NotIdleError } from '../../src/testing';
import { Customer, Order, OrderLine } from '../../examples/shop/entities';
import { createTestDb, dispose, redisClient, redisUrl, suffix, testLogger, type TestDb } from '../support';

// typeorm-coalesce/testing on the shop's chain (lines -> orders -> customers), with customers
// that settle: a quiet period after their last mark before they may be claimed.

const SETTLE_MS = 400;

/** The shop with customers settling `settleMs`; `recompute` replaces the orders' aggregates. */
function shop(
  db: TestDb,
  options: { settleMs?: number; recompute?: (id: number) => Promise<void> } & Partial<CoalescerOptions> = {},
): Coalescer {
  const { settleMs = SETTLE_MS, recompute, ...rest } = options;
  const coalescer = new Coalescer({
    dataSource: db.dataSource,
    redis: redisUrl(),
    namespace: `testing-${suffix()}`,
    logger: testLogger(),
    ...rest,
  });
  coalescer.parent<number>(
    Order,
    recompute ? { recompute } : { aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) } },
  );
  coalescer.parent<number>(Customer, {
    settleMs,
    aggregates: {
      lifetimeValue: sum(Order, 'total', { foreignKey: 'customerId' }),
      orderCount: count(Order, { foreignKey: 'customerId' }),
    },
  });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  coalescer.child(Order, { parent: Customer, foreignKey: 'customerId' });
  return coalescer;
}

/** Customers with `orders` orders of two lines each, saved through repositories (the capture marks them). */
async function seed(db: TestDb, customers: number, orders: number): Promise<{ customers: number[]; orders: number[] }> {
  const ds = db.dataSource;
  const made = await ds.getRepository(Customer).save(Array.from({ length: customers }, (_, i) => ({ name: `c${i}` })));
  const orderIds: number[] = [];
  for (const c of made) {
    for (let i = 0; i < orders; i += 1) {
      const order = await ds.getRepository(Order).save({ customer: c.name, customerId: c.id });
      await ds.getRepository(OrderLine).save([
        { orderId: order.id, sku: 'a', qty: 2, unitPrice: '1.50' },
        { orderId: order.id, sku: 'b', qty: 1, unitPrice: '4.00' },
      ]);
      orderIds.push(order.id);
    }
  }
  return { customers: made.map((c) => c.id), orders: orderIds };
}

/** Members left in any of the namespace's sorted sets. */
async function membersLeft(namespace: string): Promise<number> {
  const redis = redisClient();
  try {
    let total = 0;
    for (const key of await redis.keys(`{${namespace}}*`)) {
      if ((await redis.type(key)) === 'zset') total += await redis.zcard(key);
    }
    return total;
  } finally {
    await redis.quit();
  }
}

describe('typeorm-coalesce/testing', () => {
  let db: TestDb;
  const coalescers: Coalescer[] = [];
  const make = (options?: Parameters<typeof shop>[1]): Coalescer => {
    const c = shop(db, options);
    coalescers.push(c);
    return c;
  };

  beforeAll(async () => {
    db = await createTestDb('testing_helper', { entities: [Customer, Order, OrderLine], synchronize: false });
  });
  afterAll(async () => {
    for (const c of coalescers) await dispose(c);
    await db.destroy();
  });

  it("drainUntilIdle waits out the customers' quiet period: every order and customer fresh, nothing left", async () => {
    const coalescer = make();
    await coalescer.attach();
    const { customers, orders } = await seed(db, 3, 2);
    // One drain recomputes the orders and the customers they mark up the chain.
    const first = await coalescer.drain();
    expect(first.recomputed).toBeGreaterThanOrEqual(orders.length + customers.length);
    expect((await coalescer.stats()).settling).toBe(0);
    // An order moved to another customer marks both, which settle: a drain now claims nothing.
    await db.dataSource.getRepository(Order).save({ id: orders[0] as number, customerId: customers[1] as number });
    await db.dataSource.getRepository(Order).save({ id: orders[0] as number, customerId: customers[0] as number });
    await coalescer.flushed();
    expect((await coalescer.drain()).claimed).toBe(0);
    expect((await coalescer.stats()).settling).toBe(2);

    const totals = await drainUntilIdle(coalescer, { timeoutMs: 20_000, concurrency: 2 });
    // Each customer once, after its quiet period.
    expect(totals).toMatchObject({ recomputed: 2, failed: 0 });
    expect(totals.drains).toBeGreaterThan(1);
    for (const id of customers) {
      expect(await db.dataSource.getRepository(Customer).findOneByOrFail({ id })).toMatchObject({
        orderCount: 2,
        lifetimeValue: '14.00',
      });
    }
    await assertNoDrift(coalescer, [Order, Customer]);
    expect(await coalescer.stats()).toMatchObject({ pending: 0, settling: 0, inflight: 0, delayed: 0, dead: 0 });
    expect(await membersLeft(coalescer.namespace)).toBe(0);
  });

  it('rejects after timeoutMs naming what is left: counts and members', async () => {
    const coalescer = make({ settleMs: 60_000 });
    await coalescer.attach();
    const { customers, orders } = await seed(db, 1, 1);
    await coalescer.drain();
    // A host's change of an order marks its customer, which settles for a minute.
    await db.dataSource.getRepository(Order).save({ id: orders[0] as number, customer: 'renamed' });
    const error = await drainUntilIdle(coalescer, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotIdleError);
    expect((error as NotIdleError).message).toBe(
      'drainUntilIdle: not idle after 300 ms (timeoutMs): 0 pending, 1 settling, 0 in flight, 0 waiting to retry, 0 dead',
    );
    expect((error as NotIdleError).left).toMatchObject({ pending: 0, settling: 1, members: [] });
    // Recomputed here, so that the later tests' assertNoDrift over every customer holds.
    await coalescer.fresh(Customer, customers[0] as number, { now: true });
  });

  it('a failed recompute rejects at once with its member and error; failed: "retry" waits for the retry instead', async () => {
    const attempts = new Map<number, number>();
    const coalescer = make({
      retry: { baseMs: 50, maxMs: 50 },
      recompute: async (id) => {
        const n = (attempts.get(id) ?? 0) + 1;
        attempts.set(id, n);
        if (n === 1) throw new Error(`order ${id} is not ready`);
        await db.dataSource.query(
          `UPDATE shop_order o SET total = (SELECT COALESCE(SUM(qty * unit_price), 0) FROM shop_order_line WHERE order_id = o.id AND deleted_at IS NULL),
             line_count = (SELECT COUNT(*) FROM shop_order_line WHERE order_id = o.id AND deleted_at IS NULL) WHERE id = $1`,
          [id],
        );
      },
    });
    await coalescer.attach();
    const { orders } = await seed(db, 1, 1);
    const [order] = orders;
    const error = await drainUntilIdle(coalescer, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotIdleError);
    expect((error as NotIdleError).message).toBe(
      `drainUntilIdle: the recompute of Order:${order} failed: order ${order} is not ready (pass failed: 'retry' to wait for retries)`,
    );
    expect((error as NotIdleError).left).toMatchObject({ delayed: 1 });

    const totals = await drainUntilIdle(coalescer, { timeoutMs: 20_000, failed: 'retry' });
    expect(totals).toMatchObject({ failed: 0, promoted: 1 });
    expect(attempts.get(order as number)).toBe(2);
    // Orders have a hand-written recompute here: verify compares the customers.
    await assertNoDrift(coalescer, [Customer]);
    expect(await membersLeft(coalescer.namespace)).toBe(0);
  });

  it('assertNoDrift names the rows whose stored figures differ from their children', async () => {
    const coalescer = make({ markTimeoutMs: 50 });
    await coalescer.attach();
    const { orders } = await seed(db, 1, 1);
    await drainUntilIdle(coalescer, { timeoutMs: 20_000 });
    const [order] = orders;
    // A write the capture cannot see, and nothing marks: drift.
    await db.dataSource.query('UPDATE shop_order SET total = 99 WHERE id = $1', [order]);
    const error = await assertNoDrift(coalescer, [Order]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DriftError);
    expect((error as DriftError).message).toBe(
      `assertNoDrift: drifted parents (1 Order): Order ${order}.total: stored "99.00", expected "7.00"`,
    );
    await coalescer.mark(Order, order as number);
    await drainUntilIdle(coalescer, { timeoutMs: 20_000 });
    await assertNoDrift(coalescer, [Order, Customer]);
  });

  it('bad options are refused, naming them', async () => {
    const coalescer = make();
    await expect(drainUntilIdle(coalescer, { timeoutMs: -1 })).rejects.toThrow(
      'invalid drainUntilIdle option "timeoutMs" = -1: expected an integer >= 0',
    );
    await expect(drainUntilIdle(coalescer, { timeoutMs: 10, failed: 'ignore' as 'retry' })).rejects.toThrow(
      `invalid drainUntilIdle option "failed" = "ignore": expected 'reject' or 'retry'`,
    );
  });
});
