import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EntitySchema } from 'typeorm';
import { Redis } from 'ioredis';
import { Coalescer, type ParentOptions } from '../../src';
import { createTestDb, disposeAll, redisUrl, suffix, testLogger, type TestDb } from '../support';

// Two parent types with no children: the tests mark them explicitly and control time with an
// injected clock, so "within maxWaitMs plus one tick" is asserted in the coalescer's own time.
const Alpha = new EntitySchema<{ id: number }>({ name: 'Alpha', columns: { id: { type: 'int', primary: true } } });
const Beta = new EntitySchema<{ id: number }>({ name: 'Beta', columns: { id: { type: 'int', primary: true } } });

describe('freshness: maxWaitMs, settleMs, minIntervalMs, priorities, lag', () => {
  let db: TestDb;
  const open: Coalescer[] = [];
  let now = 1_700_000_000_000;
  const clock = (): number => now;

  beforeAll(async () => {
    db = await createTestDb('freshness', { entities: [Alpha, Beta] });
  });
  afterAll(async () => {
    await disposeAll(open);
    await db.destroy();
  });

  /** A coalescer whose recomputes append "<Type>:<id>" to `order`, with Alpha and Beta registered. */
  function make(
    order: string[],
    alpha: Partial<ParentOptions<number>> = {},
    beta: Partial<ParentOptions<number>> = {},
    maxWaitMs?: number,
  ): Coalescer {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redisUrl(),
      namespace: `fresh-${suffix()}`,
      logger: testLogger(),
      clock,
      ...(maxWaitMs === undefined ? {} : { maxWaitMs }),
    });
    c.parent<number>(Alpha, { recompute: async (id) => void order.push(`Alpha:${id}`), ...alpha });
    c.parent<number>(Beta, { recompute: async (id) => void order.push(`Beta:${id}`), ...beta });
    open.push(c);
    return c;
  }

  /** Ticks of 100 ms: 100 hot parents re-marked 5 times each, then a drain that takes 20. */
  async function hotStorm(c: Coalescer, order: string[], ticks: number): Promise<number | undefined> {
    const hot = Array.from({ length: 100 }, (_, i) => i + 1);
    await c.mark(Alpha, 1000);
    const markedAt = now;
    for (let tick = 1; tick <= ticks; tick += 1) {
      now += 100;
      for (let k = 0; k < 5; k += 1) await c.mark(Alpha, hot);
      await c.drain({ max: 20, window: 20 });
      if (order.includes('Alpha:1000')) return now - markedAt;
    }
    return undefined;
  }

  it('a cold parent behind a hot storm is recomputed within maxWaitMs plus one tick', async () => {
    const order: string[] = [];
    const c = make(order, {}, {}, 500);
    const waited = await hotStorm(c, order, 20);
    expect(waited).toBeDefined();
    expect(waited).toBeLessThanOrEqual(500 + 100);
    expect(waited).toBeGreaterThanOrEqual(500);
  });

  it('without maxWaitMs the same cold parent starves behind the storm', async () => {
    const order: string[] = [];
    const c = make(order);
    expect(await hotStorm(c, order, 20)).toBeUndefined();
  });

  it('a per-type maxWaitMs overrides the namespace one', async () => {
    const order: string[] = [];
    const c = make(order, { maxWaitMs: 200 }, {}, 5_000);
    const waited = await hotStorm(c, order, 20);
    expect(waited).toBeLessThanOrEqual(300);
  });

  it('a burst of marks within settleMs gives one recompute after the burst', async () => {
    const order: string[] = [];
    const c = make(order, { settleMs: 1_000 });
    const start = now;
    for (let i = 0; i < 5; i += 1) {
      await c.mark(Alpha, 7);
      expect((await c.drain()).recomputed).toBe(0);
      now += 200;
    }
    // Last mark at start + 800: quiet until start + 1800.
    now = start + 1_799;
    expect((await c.drain()).recomputed).toBe(0);
    expect((await c.stats()).settling).toBe(1);
    now = start + 1_800;
    expect((await c.drain()).recomputed).toBe(1);
    expect(order).toEqual(['Alpha:7']);
    const s = await c.stats();
    expect([s.pending, s.settling, s.inflight, s.overdue]).toEqual([0, 0, 0, 0]);
  });

  it('settle never delays a parent past its maxWaitMs', async () => {
    const order: string[] = [];
    const c = make(order, { settleMs: 1_000, maxWaitMs: 1_500 });
    const start = now;
    // Marked every 200 ms without end: never quiet, yet recomputed once 1500 ms have passed.
    while (now < start + 1_500) {
      await c.mark(Alpha, 8);
      expect((await c.drain()).recomputed).toBe(0);
      now += 200;
    }
    now = start + 1_500;
    expect((await c.drain()).recomputed).toBe(1);
    expect(order).toEqual(['Alpha:8']);
  });

  it('a mark during a recompute of a settling type waits settleMs from the ack', async () => {
    const order: string[] = [];
    let remarked = false;
    const c: Coalescer = make(order, {
      settleMs: 300,
      recompute: async (id) => {
        order.push(`Alpha:${id}`);
        if (!remarked) {
          remarked = true;
          await c.mark(Alpha, id);
        }
      },
    });
    await c.mark(Alpha, 9);
    now += 300;
    const first = await c.drain();
    expect(first.recomputed).toBe(1);
    expect(first.rearmed).toBe(1);
    expect((await c.stats()).settling).toBe(1);
    now += 299;
    expect((await c.drain()).recomputed).toBe(0);
    now += 1;
    expect((await c.drain()).recomputed).toBe(1);
    expect(order).toEqual(['Alpha:9', 'Alpha:9']);
  });

  /** A coalescer whose Alpha recompute marks its parent again once, during the first recompute. */
  function remarking(order: string[], alpha: Partial<ParentOptions<number>>, maxWaitMs?: number): Coalescer {
    let remarked = false;
    const c: Coalescer = make(
      order,
      {
        recompute: async (id) => {
          order.push(`Alpha:${id}`);
          if (!remarked) {
            remarked = true;
            await c.mark(Alpha, id);
          }
        },
        ...alpha,
      },
      {},
      maxWaitMs,
    );
    return c;
  }

  it("minIntervalMs: a parent marked during its recompute waits that long from the ack in a runner's drain; marks meanwhile add heat, not claims", async () => {
    const order: string[] = [];
    const c = remarking(order, { minIntervalMs: 400 });
    await c.mark(Alpha, 9);
    const first = await c.drain({ leaveCooling: true });
    expect(first).toMatchObject({ recomputed: 1, rearmed: 1 });
    expect(await c.stats()).toMatchObject({ pending: 0, settling: 1 });
    now += 100;
    await c.mark(Alpha, [9, 9]);
    expect(await c.stats()).toMatchObject({ pending: 0, settling: 1 });
    expect((await c.drain({ leaveCooling: true })).recomputed).toBe(0);
    now += 299;
    expect((await c.drain({ leaveCooling: true })).recomputed).toBe(0);
    now += 1;
    expect((await c.drain({ leaveCooling: true })).recomputed).toBe(1);
    expect(order).toEqual(['Alpha:9', 'Alpha:9']);
    expect(await c.stats()).toMatchObject({ pending: 0, settling: 0 });
    const raw = new Redis(redisUrl());
    try {
      expect(await raw.exists(`{${c.namespace}}:cooling`, `{${c.namespace}}:settling`)).toBe(0);
    } finally {
      raw.disconnect();
    }
  });

  it('minIntervalMs: drain() recomputes a parent in its minimum interval before it returns', async () => {
    const order: string[] = [];
    const c = remarking(order, {});
    await c.mark(Alpha, 3);
    // The default interval (500 ms) applies; time does not move, yet the drain finishes it.
    expect(await c.drain()).toMatchObject({ recomputed: 2, rearmed: 1 });
    expect(order).toEqual(['Alpha:3', 'Alpha:3']);
    expect(await c.stats()).toMatchObject({ pending: 0, settling: 0 });
  });

  it('minIntervalMs: under sustained writes drain() recomputes a parent once more, then leaves it in its interval and returns', async () => {
    const order: string[] = [];
    // Every recompute is followed by a mark, as under writers that never pause.
    const c: Coalescer = make(order, {
      recompute: async (id) => {
        order.push(`Alpha:${id}`);
        await c.mark(Alpha, id);
      },
    });
    await c.mark(Alpha, [6, 7]);
    expect(await c.drain()).toMatchObject({ recomputed: 4, rearmed: 4 });
    expect(order.sort()).toEqual(['Alpha:6', 'Alpha:6', 'Alpha:7', 'Alpha:7']);
    expect(await c.stats()).toMatchObject({ pending: 0, settling: 2 });
    // Each drain() gives them one more recompute; a runner's drain leaves them to their interval.
    expect(await c.drain()).toMatchObject({ recomputed: 2 });
    expect(await c.drain({ leaveCooling: true })).toMatchObject({ recomputed: 0 });
    now += 500;
    expect(await c.drain({ leaveCooling: true })).toMatchObject({ recomputed: 2 });
    expect(await c.stats()).toMatchObject({ pending: 0, settling: 2 });
  });

  it('minIntervalMs never delays a parent past its maxWaitMs; a parent marked while idle is claimed at once; 0 turns it off', async () => {
    const order: string[] = [];
    const capped = remarking(order, { minIntervalMs: 5_000 }, 300);
    await capped.mark(Alpha, 4);
    expect((await capped.drain({ leaveCooling: true })).recomputed).toBe(1);
    now += 299;
    expect((await capped.drain({ leaveCooling: true })).recomputed).toBe(0);
    now += 1;
    expect((await capped.drain({ leaveCooling: true })).recomputed).toBe(1);
    // Idle again: the next mark is claimed at once, whatever the interval.
    now += 1;
    await capped.mark(Alpha, 4);
    expect((await capped.drain({ leaveCooling: true })).recomputed).toBe(1);
    expect(order).toEqual(['Alpha:4', 'Alpha:4', 'Alpha:4']);

    const off: string[] = [];
    const c = remarking(off, { minIntervalMs: 0 });
    await c.mark(Alpha, 5);
    expect((await c.drain({ leaveCooling: true })).recomputed).toBe(2);
  });

  it('minIntervalMs out of range is a RegistrationError naming it; the namespace option a ConfigError', () => {
    expect(() => make([], { minIntervalMs: -1 })).toThrow(
      /Alpha: minIntervalMs must be an integer from 0 to 86400000 ms, got -1/,
    );
    expect(
      () => new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: `fresh-${suffix()}`, minIntervalMs: 1.5 }),
    ).toThrow(/invalid option "minIntervalMs" = 1.5/);
  });

  it('priorities order the drain: critical before normal before low, whatever the heat', async () => {
    const order: string[] = [];
    const c = make(order, { priority: 'low' }, { priority: 'critical' });
    // Alpha parents are far hotter, yet every Beta goes first.
    for (let k = 0; k < 10; k += 1) await c.mark(Alpha, [1, 2, 3]);
    await c.mark(Beta, [1, 2]);
    await c.drain({ window: 1 });
    expect(order.slice(0, 2).sort()).toEqual(['Beta:1', 'Beta:2']);
    expect(order.slice(2).sort()).toEqual(['Alpha:1', 'Alpha:2', 'Alpha:3']);
    expect(await c.hottest()).toEqual([]);
  });

  it('a low-priority parent is not starved beyond maxWaitMs by a critical storm', async () => {
    const order: string[] = [];
    const c = make(order, { priority: 'low', maxWaitMs: 300 }, { priority: 'critical' });
    await c.mark(Alpha, 1);
    const markedAt = now;
    let waited: number | undefined;
    for (let tick = 1; tick <= 10 && waited === undefined; tick += 1) {
      now += 100;
      await c.mark(
        Beta,
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      await c.drain({ max: 10, window: 10 });
      if (order.includes('Alpha:1')) waited = now - markedAt;
    }
    expect(waited).toBeDefined();
    expect(waited).toBeLessThanOrEqual(400);
  });

  it('reports the age of the oldest pending parent and the p50/p99 wait of recent recomputes', async () => {
    const order: string[] = [];
    const c = make(order);
    await c.mark(Alpha, 1);
    now += 250;
    await c.mark(Alpha, 2);
    now += 50;
    const before = await c.stats();
    expect(before.oldestPendingMs).toBe(300);
    expect(before.wait).toEqual({ samples: 0, p50Ms: null, p99Ms: null });
    await c.drain({ window: 1 });
    const after = await c.stats();
    expect(after.oldestPendingMs).toBeNull();
    expect(after.wait.samples).toBe(2);
    expect(after.wait.p50Ms).toBe(50);
    expect(after.wait.p99Ms).toBe(300);
  });
});
