import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shopCoalescer } from '../../examples/shop/app';
import { Customer, Order, OrderLine } from '../../examples/shop/entities';
import { coalesceMigrations } from '../../migrations';
import type { Coalescer, Housework } from '../../src';
import { createTestDb, suffix, testLogger, waitFor, type TestDb } from '../support';
import { OwnRedis } from '../support/servers';

/** The same durability on MySQL/MariaDB: the outbox table, its relay with SKIP LOCKED, the epoch. */
describe('outbox and Redis losses on MariaDB', () => {
  let db: TestDb;
  const closing: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    db = await createTestDb('maria_outbox', {
      dialect: 'mariadb',
      entities: [Customer, Order, OrderLine],
      migrations: coalesceMigrations,
    });
  });
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
    await db.destroy();
  });

  async function setUp(delivery: 'redis' | 'outbox', persist: boolean): Promise<{ redis: OwnRedis; c: Coalescer }> {
    const redis = new OwnRedis({ persist });
    closing.push(() => redis.destroy());
    await redis.start();
    const c = shopCoalescer(db.dataSource, {
      redis: redis.url,
      namespace: `maria-${suffix()}`,
      logger: testLogger(),
      delivery,
      markTimeoutMs: 300,
    });
    closing.push(async () => {
      c.detach();
      await c.close();
    });
    await c.attach();
    return { redis, c };
  }

  /** Orders whose total or line count differ from their live lines (verify, as the demo does). */
  const drift = async (c: Coalescer): Promise<number> => (await c.verify(Order)).drifted + (await c.verify(Customer)).drifted;

  for (const delivery of ['redis', 'outbox'] as const) {
    it(`Redis down (delivery '${delivery}'): saves commit, the marks wait in the MariaDB outbox, and all converges`, async () => {
      const { redis, c } = await setUp(delivery, true);
      const [customer] = await db.dataSource.getRepository(Customer).save([{ name: delivery }]);
      const orders = await db.dataSource
        .getRepository(Order)
        .save(Array.from({ length: 30 }, () => ({ customer: delivery, customerId: customer!.id })));
      await c.drain();
      await redis.kill();
      await db.dataSource.transaction(async (m) => {
        for (const o of orders) await m.save(m.create(OrderLine, { orderId: o.id, sku: 'x', qty: 2, unitPrice: '3.00' }));
      });
      await c.flushed();
      expect(await c.outbox.size()).toBe(30);
      await redis.start();
      await waitFor(async () => {
        await c.drain({ concurrency: 2 });
        return (await c.outbox.size()) === 0 && (await c.stats()).pending === 0;
      }, 'the outbox to be relayed and drained');
      expect(await drift(c)).toBe(0);
    });
  }

  it('Redis restarted empty with strict delivery: the kept rows are sent again, no parent stays stale', async () => {
    const { redis, c } = await setUp('outbox', false);
    const works: Housework[] = [];
    c.on('housework', (w) => works.push(w));
    const [customer] = await db.dataSource.getRepository(Customer).save([{ name: 'loss' }]);
    const order = await db.dataSource.getRepository(Order).save({ customer: 'loss', customerId: customer!.id });
    await c.drain();
    await db.dataSource.getRepository(OrderLine).save({ orderId: order.id, sku: 'y', qty: 5, unitPrice: '1.00' });
    await c.flushed();
    expect(await c.outbox.size()).toBe(1);
    await redis.restart();
    await waitFor(async () => {
      await c.drain();
      return (await drift(c)) === 0 && (await c.outbox.size()) === 0;
    }, 'the lost marks to be sent again and recomputed');
    expect(works.some((w) => w.redisLost && w.relayed >= 1)).toBe(true);
  });
});
