import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coalescer } from '../../src';
import { createTestDb, Order, OrderLine, redisClient, redisUrl, suffix, testLogger, type TestDb } from '../support';

/** Keys of the namespace that hold something, with their sizes (hashes and sets alike). */
async function keysLeft(c: Coalescer): Promise<Record<string, number>> {
  const raw = redisClient();
  try {
    const out: Record<string, number> = {};
    for (const [name, key] of Object.entries(c.keys)) {
      const type = await raw.type(key);
      if (type === 'none') continue;
      out[name] =
        type === 'zset'
          ? await raw.zcard(key)
          : type === 'hash'
            ? await raw.hlen(key)
            : type === 'list'
              ? await raw.llen(key)
              : 1;
    }
    return out;
  } finally {
    raw.disconnect();
  }
}

/**
 * What a namespace keeps whatever its parents do: its epoch, fence counter, type policies, and
 * one entry per process in `writers` (the generation of its last mark, taken out when it closes).
 */
const NAMESPACE_STATE = ['epoch', 'fence', 'policy', 'writers'];

describe('dead letters', () => {
  let db: TestDb;
  const open: Coalescer[] = [];
  beforeAll(async () => {
    db = await createTestDb('dead_letters');
  });
  afterAll(async () => {
    for (const c of open) {
      await c.reset();
      await c.close();
    }
    await db.destroy();
  });

  function failing(fail: { now: boolean }): Coalescer {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redisUrl(),
      namespace: `dead-${suffix()}`,
      logger: testLogger(),
      retry: { attempts: 1, baseMs: 0, maxMs: 0 },
    });
    c.parent<number>(Order, {
      recomputeMany: async () => {
        if (fail.now) throw new Error('boom');
      },
    });
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    open.push(c);
    return c;
  }

  it('purging or retrying 5,000 dead parents leaves no per-parent state in Redis', async () => {
    const fail = { now: true };
    const c = failing(fail);
    const ids = Array.from({ length: 5_000 }, (_, i) => i + 1);
    await c.mark(Order, ids);
    expect((await c.drain({ concurrency: 4 })).deadLettered).toBe(5_000);
    expect(await c.dead.purge('all')).toBe(5_000);
    const left = await keysLeft(c);
    for (const name of NAMESPACE_STATE) delete left[name];
    expect(left).toEqual({});

    await c.mark(Order, ids);
    expect((await c.drain({ concurrency: 4 })).deadLettered).toBe(5_000);
    fail.now = false;
    expect(await c.dead.retry('all')).toBe(5_000);
    expect((await c.drain({ concurrency: 4 })).recomputed).toBe(5_000);
    const after = await keysLeft(c);
    for (const name of [...NAMESPACE_STATE, 'waits']) delete after[name];
    expect(after).toEqual({});
  });

  it('purging a named member that is not dead leaves it and its state alone', async () => {
    const c = failing({ now: false });
    await c.mark(Order, 7);
    expect(await c.dead.purge(['Order:7'])).toBe(0);
    const s = await c.state(Order, 7);
    expect(s.waiting).toBe(true);
    const raw = redisClient();
    expect(await raw.hexists(c.keys.generations, 'Order:7')).toBe(1);
    raw.disconnect();
  });

  it.each([
    ['a 100 KB id of an unknown type', (): string | Buffer => `Ghost:${'x'.repeat(100_000)}`],
    ['a 100 KB unknown type name', (): string | Buffer => `${'G'.repeat(100_000)}:1`],
    [
      'a 100 KB member that is not UTF-8',
      (): string | Buffer => Buffer.concat([Buffer.from('Ghost:'), Buffer.alloc(100_000, 0xff)]),
    ],
  ])('%s is dead-lettered once, listed beside its short sibling, and its error line stays short', async (_what, make) => {
    const c = failing({ now: false });
    const big = make();
    const raw = redisClient();
    await raw.zadd(c.keys.pending, 1e12 + 100, big, 1e12 + 99, 'Ghost:1');
    await c.mark(Order, [1, 2, 3]);
    const r = await c.drain({ concurrency: 2 });
    expect(r.deadLettered).toBe(2);
    expect(r.recomputed).toBe(3);
    expect(await raw.zcard(c.keys.pending)).toBe(0);
    expect(await raw.zscore(c.keys.dead, big)).not.toBeNull();
    raw.disconnect();
    const list = await c.dead.list();
    expect(list).toHaveLength(2);
    const long = list.find((d) => d.member !== 'Ghost:1');
    expect(long?.member.length).toBeGreaterThan(100_000);
    if (typeof big === 'string') expect(long?.member).toBe(big);
    expect(long?.error.length).toBeLessThan(400);
    expect(list.find((d) => d.member === 'Ghost:1')?.error).toMatch(/unknown parent type Ghost/);
    // A later drain does not touch them again.
    expect((await c.drain()).claimed).toBe(0);
    expect(await c.dead.purge('all')).toBe(2);
    expect((await c.stats()).dead).toBe(0);
  });
});
