import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDb,
  dispose,
  Order,
  OrderLine,
  RecomputeLog,
  shopCoalescer,
  type TestDb,
  countMismatches,
  monitorNamespace,
} from '../support';
import type { Coalescer } from '../../src';

describe('capture and drain, end to end', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  const log = new RecomputeLog();
  beforeAll(async () => {
    db = await createTestDb('smoke');
    coalescer = shopCoalescer(db.dataSource, { log });
    await coalescer.attach();
  });
  afterAll(async () => {
    await dispose(coalescer);
    await db.destroy();
  });

  it('50 lines saved in one transaction are one round trip and one recompute', async () => {
    let orderId = 0;
    const commands = await monitorNamespace(coalescer.namespace, async () => {
      await db.dataSource.transaction(async (m) => {
        const order = await m.save(m.create(Order, { customer: 'a' }));
        orderId = order.id;
        for (let i = 0; i < 50; i += 1) {
          await m.save(m.create(OrderLine, { orderId: order.id, sku: `s${i}`, qty: 2, unitPrice: '1.50' }));
        }
      });
      await coalescer.flushed();
    });
    expect(commands).toHaveLength(1);
    expect(await coalescer.hottest(5)).toEqual([{ member: `Order:${orderId}`, heat: 50 }]);
    const r = await coalescer.drain();
    expect(r.recomputed).toBe(1);
    expect(log.of(orderId)).toBe(1);
    const order = await db.dataSource.getRepository(Order).findOneByOrFail({ id: orderId });
    expect(order.lineCount).toBe(50);
    expect(order.total).toBe('150.00');
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
    expect((await coalescer.stats()).pending).toBe(0);
  });
});
