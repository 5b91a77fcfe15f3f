import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Coalescer, count, sum, type CoalescerOptions } from '../../src';
import { countMismatches, createTestDb, Order, OrderLine, suffix, testLogger, waitFor, type TestDb } from '../support';
import { OwnRedis, Relay } from '../support/servers';
import { recordingLogger } from '../support/capture-entities';

/**
 * A Redis failover to a replica that missed the last writes (replication is asynchronous): the
 * replica keeps the epoch, but not the marks made after its link to the primary was cut. Every
 * change must still be recomputed.
 */
describe('Redis failover to a replica that missed the last writes', () => {
  let db: TestDb;
  let primary: OwnRedis;
  let replica: OwnRedis;
  let relay: Relay;
  const open: Coalescer[] = [];

  beforeAll(async () => {
    db = await createTestDb('failover');
  });
  afterAll(async () => {
    await db.destroy();
  });

  // A primary, a replica of it, and one address the clients use: the relay, moved at failover.
  async function servers(): Promise<void> {
    primary = new OwnRedis({ persist: false });
    await primary.start();
    replica = new OwnRedis({ persist: false, args: ['--replicaof', '127.0.0.1', String(primary.port)] });
    await replica.start();
    relay = new Relay(primary.port);
    await relay.start();
  }
  afterEach(async () => {
    for (const c of open.splice(0)) await c.close().catch(() => undefined);
    await relay?.destroy();
    await replica?.destroy();
    await primary?.destroy();
  });

  function coalescer(options: Partial<CoalescerOptions> = {}): Coalescer {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: relay.url,
      namespace: `failover-${suffix()}`,
      logger: testLogger(),
      ...options,
    });
    c.parent<number>(Order, { aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) } });
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    open.push(c);
    return c;
  }

  /** Waits until the replica has every write the primary took, then cuts its link. */
  async function syncThenCut(): Promise<void> {
    const p = new Redis(primary.url);
    const r = new Redis(replica.url);
    try {
      await waitFor(async () => Number(await p.wait(1, 1000)) === 1, 'the replica to catch up');
      // Pointed at a port nothing listens on, the replica keeps its data and takes no more writes.
      await r.replicaof('127.0.0.1', 1);
    } finally {
      p.disconnect();
      r.disconnect();
    }
  }

  /** The replica becomes the primary, and the clients' address leads to it. */
  async function failover(): Promise<void> {
    const r = new Redis(replica.url);
    await r.replicaof('NO', 'ONE');
    r.disconnect();
    relay.moveTo(replica.port);
  }

  async function seed(orders: number): Promise<number[]> {
    const saved = await db.dataSource
      .getRepository(Order)
      .save(Array.from({ length: orders }, (_, i) => ({ customer: `f${i}` })));
    return saved.map((o) => o.id);
  }

  async function addLines(ids: readonly number[], qty: number): Promise<void> {
    await db.dataSource.getRepository(OrderLine).save(ids.map((orderId) => ({ orderId, sku: 'f', qty, unitPrice: '1.25' })));
  }

  /** Drains until nothing waits; returns whether a drain found a data loss. */
  async function drainAll(c: Coalescer): Promise<boolean> {
    let lost = false;
    const onWork = (w: { redisLost: boolean }): void => {
      lost ||= w.redisLost;
    };
    c.on('housework', onWork);
    try {
      for (let round = 0; round < 20; round += 1) {
        await c.drain({ concurrency: 4 });
        const s = await c.stats();
        if (s.pending + s.inflight + s.delayed + s.settling + (s.outbox ?? 0) === 0 && round > 0) break;
      }
    } finally {
      c.off('housework', onWork);
    }
    return lost;
  }

  /**
   * Six orders recomputed, then one transaction's mark made on the primary only, and the failover:
   * the replica misses one value of the fence counter. Returns the orders.
   */
  async function loseOneMark(c: Coalescer): Promise<number[]> {
    const ids = await seed(6);
    await addLines(ids, 2);
    await c.flushed();
    await c.drain({ concurrency: 4 });
    await syncThenCut();
    await addLines([ids[0]!], 3);
    await c.flushed();
    await failover();
    return ids;
  }

  /** Whether `c` reaches Redis (the failover cut its connections). */
  const answers = (c: Coalescer): Promise<boolean> =>
    c.ping().then(
      () => true,
      () => false,
    );

  it("delivery 'redis': a process that saw the lost marks finds the loss at its next drain, and every order is recomputed", async () => {
    await servers();
    const c = coalescer();
    await c.attach();
    const ids = await seed(30);
    await addLines(ids, 2);
    await c.flushed();
    await c.drain({ concurrency: 4 });
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);

    await syncThenCut();
    // Made on the primary only: the replica never sees these marks.
    await addLines(ids.slice(0, 10), 3);
    await c.flushed();
    await failover();

    expect(await drainAll(c)).toBe(true);
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);
    expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
  });

  it("delivery 'redis': a replica that missed one transaction's mark is found by the next mark of the process that made it, said once, and healed", async () => {
    await servers();
    const log = recordingLogger('info');
    const c = coalescer({ logger: log.logger });
    await c.attach();
    const ids = await loseOneMark(c);
    // Connected again (the move cut the connection), so that every mark below reaches the replica.
    await waitFor(async () => (await answers(c)) && (await c.stats()).marker.undelivered === 0, 'the connection to the replica');
    // The next marks (one per transaction) get that value again, then larger ones.
    for (const id of ids.slice(1)) {
      await addLines([id], 1);
      await c.flushed();
    }

    expect(log.lines.filter((l) => l.msg.includes('Redis does not take marks'))).toEqual([]);
    expect(await drainAll(c)).toBe(true);
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);
    expect(log.lines.filter((l) => l.msg.includes('Redis gave a fence value it had given before'))).toHaveLength(1);
    expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
  });

  it.each(['its next mark', 'its next drain'])(
    "delivery 'redis': the process whose mark the replica missed finds it at %s, even after other processes' marks took the counter past it",
    async (next) => {
      await servers();
      const namespace = `failover-${suffix()}`;
      const c = coalescer({ namespace });
      const other = coalescer({ namespace });
      await c.attach();
      const ids = await loseOneMark(c);
      await waitFor(async () => (await answers(c)) && (await answers(other)), 'the connections to the replica');
      // Another process marks first: the counter passes the value the lost mark had.
      for (let i = 0; i < 3; i += 1) await other.mark(Order, ids[5]!);
      if (next === 'its next mark') {
        await addLines([ids[1]!], 1);
        await c.flushed();
      }

      expect(await drainAll(c)).toBe(true);
      expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);
      expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
    },
  );

  it("delivery 'outbox': a process started after the failover finds the loss from the outbox rows, and every order is recomputed", async () => {
    await servers();
    const namespace = `failover-${suffix()}`;
    const first = coalescer({ namespace, delivery: 'outbox' });
    await first.attach();
    const ids = await seed(30);
    await addLines(ids, 2);
    await first.flushed();
    await first.drain({ concurrency: 4 });
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);

    await syncThenCut();
    await addLines(ids.slice(0, 10), 3);
    await first.flushed();
    // The process that made the marks is gone: only the database remembers them.
    await first.close();
    await failover();

    const second = coalescer({ namespace, delivery: 'outbox' });
    await second.attach();
    expect(await drainAll(second)).toBe(true);
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);
    expect(await second.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0, outbox: 0 });
  });

  it('a failover that lost nothing is no loss: no rebuild, no new epoch', async () => {
    await servers();
    const c = coalescer();
    await c.attach();
    const ids = await seed(10);
    await addLines(ids, 1);
    await c.flushed();
    await c.drain();
    await syncThenCut();
    await failover();
    await addLines(ids, 1);
    await c.flushed();
    expect(await drainAll(c)).toBe(false);
    expect(await countMismatches(db.dataSource.manager, ids)).toBe(0);
  });
  it("the writers' entries of processes that ended are pruned by the epoch check, the newest kept; close() takes its own out", async () => {
    await servers();
    const c = coalescer();
    await c.attach();
    const raw = new Redis(primary.url);
    try {
      // The process's own mark comes after the ended ones': its generation is above theirs.
      await raw.incrby(`{${c.namespace}}:fence`, 5_000);
      const [id] = await seed(1);
      await addLines([id!], 1);
      await c.flushed();
      const writers = `{${c.namespace}}:writers`;
      const own = await raw.hgetall(writers);
      expect(Object.keys(own)).toHaveLength(1);
      const gone: string[] = [];
      for (let i = 1; i <= 1_100; i += 1) gone.push(`ended-${i}`, String(i));
      await raw.hset(writers, ...gone);
      await c.drain();
      const kept = await raw.hgetall(writers);
      expect(Object.keys(kept)).toHaveLength(500);
      expect(kept).toMatchObject(own);
      expect(kept['ended-1100']).toBe('1100');
      expect(kept['ended-601']).toBeUndefined();
      // A process that closes takes its own entry out.
      await c.close();
      expect(await raw.hexists(writers, Object.keys(own)[0]!)).toBe(0);
    } finally {
      raw.disconnect();
    }
  });
});
