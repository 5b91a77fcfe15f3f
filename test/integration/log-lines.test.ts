import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataSource } from 'typeorm';
import { Coalescer, ConnectionError } from '../../src';
import { recordingLogger } from '../support/capture-entities';
import { createTestDb, databaseUrl, Order, OrderLine, seedOrders, shopCoalescer, suffix, waitFor, type TestDb } from '../support';
import { OwnRedis } from '../support/servers';

/** Log lines that must say what happened once, and say it right. */
describe('log lines', () => {
  let db: TestDb;
  const closing: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    db = await createTestDb('log_lines');
  });
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
    await db.destroy();
  });

  it('a Redis outage is said once with its start, and once with its totals when it ends, not once per transaction', async () => {
    const redis = new OwnRedis({ persist: false });
    await redis.start();
    closing.push(() => redis.destroy());
    const log = recordingLogger('info');
    const c = shopCoalescer(db.dataSource, { redis: redis.url, markTimeoutMs: 200, logger: log.logger });
    closing.push(() => c.close());
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
    await redis.kill();
    const lines = db.dataSource.getRepository(OrderLine);
    for (let i = 0; i < 40; i += 1) await lines.save({ orderId, sku: `o${i}`, qty: 1, unitPrice: '1.00' });
    await c.flushed();
    const said = (text: string): number => log.lines.filter((l) => l.msg.includes(text)).length;
    expect(said('Redis does not take marks')).toBe(1);
    expect(said('Redis takes marks again')).toBe(0);
    expect(await c.outbox.size()).toBe(40);

    await redis.start();
    // Saves go on while the marker's connection comes back; the first delivered one ends the outage.
    let saves = 40;
    await waitFor(async () => {
      await lines.save({ orderId, sku: `back${saves}`, qty: 1, unitPrice: '1.00' });
      saves += 1;
      await c.flushed();
      return said('Redis takes marks again') === 1;
    }, 'a delivered mark');
    expect(said('Redis does not take marks')).toBe(1);
    const end = log.lines.find((l) => l.msg.includes('Redis takes marks again'));
    expect(end).toMatchObject({ sends: saves - 1, kept: saves - 1, lost: 0 });
  });

  it("another process's reset() is not taken for a data loss", async () => {
    const namespace = `logs-${suffix()}`;
    const log = recordingLogger('info');
    const a = shopCoalescer(db.dataSource, { namespace });
    const b = shopCoalescer(db.dataSource, { namespace, logger: log.logger });
    closing.push(
      () => a.close(),
      () => b.close(),
    );
    await b.mark(Order, 1);
    expect((await b.drain()).recomputed).toBe(1);
    await a.reset();
    const work: { redisLost: boolean }[] = [];
    b.on('housework', (w) => work.push(w));
    await b.mark(Order, 2);
    expect((await b.drain()).recomputed).toBe(1);
    expect(work.map((w) => w.redisLost)).toEqual([false]);
    expect(log.lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([]);
  });

  it('a failed epoch check names the service that failed: Redis and where it is, or the database', async () => {
    const redis = new OwnRedis({ persist: false });
    await redis.start();
    closing.push(() => redis.destroy());
    const c = shopCoalescer(db.dataSource, { redis: redis.url, markTimeoutMs: 200 });
    closing.push(() => c.close());
    await c.drain();
    await redis.kill();
    const redisDown = await c.drain().catch((e: unknown) => e);
    expect(redisDown).toBeInstanceOf(ConnectionError);
    expect((redisDown as Error).message).toContain(`127.0.0.1:${redis.port}`);
    expect((redisDown as Error).message).not.toMatch(/database/i);

    await redis.start();
    const own = new DataSource({ type: 'postgres', url: databaseUrl(), schema: db.schema, entities: [Order, OrderLine] });
    await own.initialize();
    const d = new Coalescer({ dataSource: own, redis: redis.url, namespace: `logs-${suffix()}` });
    d.parent(Order, { recompute: async () => undefined });
    closing.push(() => d.close());
    await own.destroy();
    const dbDown = await d.drain().catch((e: unknown) => e);
    expect(dbDown).toBeInstanceOf(ConnectionError);
    expect((dbDown as Error).message).toMatch(/database/);
    expect((dbDown as Error).message).not.toMatch(/Redis/);
  });
});
