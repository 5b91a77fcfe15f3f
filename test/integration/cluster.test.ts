import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { countMismatches, createTestDb, Order, OrderLine, seedOrders, shopCoalescer, waitFor, type TestDb } from '../support';
import { OwnCluster } from '../support/servers';

describe('Redis Cluster', () => {
  let db: TestDb;
  let cluster: OwnCluster;
  const closing: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    db = await createTestDb('cluster');
    cluster = new OwnCluster(3);
    await cluster.start();
  });
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
    await cluster.destroy();
    await db.destroy();
  });

  function client(): Cluster {
    const c = new Cluster(
      cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
      { redisOptions: { maxRetriesPerRequest: 3 } },
    );
    c.on('error', () => undefined);
    closing.push(async () => c.disconnect());
    return c;
  }

  it('marks, claims and recomputes on a 3-master cluster: one namespace is one hash tag', async () => {
    const c = shopCoalescer(db.dataSource, { redis: client(), many: true });
    closing.push(() => c.close());
    await c.attach();
    const ids = await seedOrders(db.dataSource, 200, 1);
    await c.mark(Order, ids);
    for (const orderId of ids.slice(0, 10)) {
      await db.dataSource.getRepository(OrderLine).save({ orderId, sku: 'c', qty: 2, unitPrice: '1.00' });
    }
    await c.flushed();
    const r = await c.drain({ concurrency: 4 });
    expect(r.recomputed).toBe(200);
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);
    expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0 });
    c.detach();
  });

  it('read your writes and live events on a cluster: fresh() resolves after the recompute, subscribe() sees it', async () => {
    const c = shopCoalescer(db.dataSource, { redis: client() });
    closing.push(() => c.close());
    await c.attach();
    const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
    await c.drain();
    const seen: string[] = [];
    const subscription = await c.subscribe((e) => {
      if (e.type === 'recomputed') seen.push(e.member);
    });
    closing.push(() => subscription.close());
    await db.dataSource.getRepository(OrderLine).save({ orderId, sku: 'fresh', qty: 3, unitPrice: '2.00' });
    const fresh = c.fresh(Order, orderId, { timeoutMs: 20_000 });
    const runner = c.runner({ schedule: '* * * * * *' });
    runner.start();
    closing.push(() => runner.stop());
    await fresh;
    expect(await countMismatches(db.dataSource.manager, [orderId])).toBe(0);
    await waitFor(() => seen.includes(`Order:${orderId}`), 'the recomputed event');
    await runner.stop();
    c.detach();
  });

  // A paused shard (connections open, nothing answers) and a killed one (connections refused).
  it.each(['paused', 'killed'] as const)(
    'a %s shard never holds a save: the marker fails fast on a Cluster too, the mark waits in the outbox and is recomputed once the shard is back',
    async (fault) => {
      const c = shopCoalescer(db.dataSource, { redis: client(), markTimeoutMs: 200, awaitMarks: true });
      closing.push(() => c.close());
      await c.attach();
      const [orderId] = (await seedOrders(db.dataSource, 1, 0)) as [number];
      await c.drain();
      const shard = await cluster.nodeOf(c.keys.pending);
      if (fault === 'paused') {
        shard.pause();
        closing.push(async () => shard.resume());
      } else {
        await shard.kill();
      }
      const started = performance.now();
      let saved = false;
      const save = db.dataSource
        .getRepository(OrderLine)
        .save({ orderId, sku: fault, qty: 1, unitPrice: '2.00' })
        .then(() => (saved = true));
      // The save ends while the shard is still out, within the mark timeout and a second.
      await Promise.race([save, new Promise((resolve) => setTimeout(resolve, 200 + 1_000))]);
      const waited = performance.now() - started;
      expect(saved, `save still waiting after ${Math.round(waited)} ms`).toBe(true);
      await c.flushed();
      expect(await c.outbox.size()).toBe(1);
      if (fault === 'paused') shard.resume();
      else await shard.start();
      await waitFor(
        async () => {
          await c.drain().catch(() => undefined);
          return (await countMismatches(db.dataSource.manager, [orderId])) === 0;
        },
        'the kept mark to be relayed and recomputed',
        30_000,
      );
      c.detach();
    },
    60_000,
  );
});
