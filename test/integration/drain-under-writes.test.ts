import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  countMismatches,
  createTestDb,
  Order,
  OrderLine,
  RecomputeLog,
  seedOrders,
  shopCoalescer,
  type TestDb,
} from '../support';

// A drain called by hand (or `coalesce drain`) while writers keep saving the lines of hot orders:
// each order marked during its recompute is recomputed once more, then left in its minimum
// interval, and the drain returns. Once the writers stop, a drain converges.
describe('drain() under sustained writes', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('drain_writes', { entities: [Order, OrderLine] });
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('returns, having recomputed each hot order at most twice; the writes it left are recomputed by the next drain', async () => {
    const ds = db.dataSource;
    const log = new RecomputeLog();
    // Recomputes that take a while, so that every one of them sees writes land.
    const c = shopCoalescer(ds, { log, before: () => new Promise((resolve) => setTimeout(resolve, 20)) });
    await c.attach();
    try {
      const hot = await seedOrders(ds, 2, 1);
      let writing = true;
      let saves = 0;
      const writer = async (orderId: number): Promise<void> => {
        const repo = ds.getRepository(OrderLine);
        while (writing) {
          const line = await repo.findOneByOrFail({ orderId });
          line.qty += 1;
          await repo.save(line);
          saves += 1;
        }
      };
      const writers = [...hot, ...hot].map(writer);
      try {
        while (saves < 20) await new Promise((resolve) => setTimeout(resolve, 5));
        const result = await c.drain();
        expect(result.recomputed).toBeGreaterThanOrEqual(2);
        for (const id of hot) expect(log.of(id)).toBeLessThanOrEqual(2);
      } finally {
        writing = false;
        await Promise.all(writers);
      }
      await c.drain();
      expect(await countMismatches(ds.manager, hot)).toBe(0);
      expect(await c.stats()).toMatchObject({ pending: 0, settling: 0, inflight: 0, delayed: 0 });
    } finally {
      await c.close();
    }
  });
});
