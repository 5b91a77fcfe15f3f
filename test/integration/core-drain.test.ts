import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Column, Entity, PrimaryColumn } from 'typeorm';
import { Coalescer, type ParentOptions, RecomputeTimeoutError } from '../../src';
import {
  createTestDb,
  crashedClaims,
  disposeAll,
  redisClient,
  redisUrl,
  suffix,
  testLogger,
  waitFor,
  type TestDb,
  internals,
  Doc,
  Tracker,
} from '../support';

@Entity({ name: 'drain_sku' })
class Sku {
  @PrimaryColumn({ type: 'varchar' }) code!: string;
  @Column({ type: 'int', default: 0 }) n!: number;
}

describe('drain: claims, leases, re-arming, failures', () => {
  let db: TestDb;
  const open: Coalescer[] = [];
  beforeAll(async () => {
    db = await createTestDb('drain', { entities: [Doc, Sku] });
  });
  afterAll(async () => {
    await disposeAll(open);
    await db.destroy();
  });

  function make(
    namespace: string,
    tracker: Tracker,
    options: Partial<ParentOptions<number>> & {
      leaseMs?: number;
      retry?: { attempts: number; baseMs: number; maxMs: number };
      recomputeTimeoutMs?: number;
    } = {},
  ): Coalescer {
    const { leaseMs, retry, recomputeTimeoutMs, ...parent } = options;
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redisUrl(),
      namespace,
      logger: testLogger(),
      ...(leaseMs === undefined ? {} : { leaseMs }),
      ...(retry === undefined ? {} : { retry }),
      ...(recomputeTimeoutMs === undefined ? {} : { recomputeTimeoutMs }),
    });
    c.parent<number>(Doc, { recompute: (id) => tracker.around(`Doc:${id}`), ...parent });
    open.push(c);
    return c;
  }

  it(
    '8 concurrent claimers over 10,000 parents recompute each exactly once, never two at once',
    { timeout: 180_000 },
    async () => {
      const ns = `drain-${suffix()}`;
      const tracker = new Tracker();
      const workers = Array.from({ length: 8 }, () => make(ns, tracker));
      const ids = Array.from({ length: 10_000 }, (_, i) => i + 1);
      expect(await workers[0]!.mark(Doc, ids)).toBe(10_000);
      // Window 1: every worker reads the same top member, so claims must collide.
      const results = await Promise.all(workers.map((w) => w.drain({ window: 1 })));
      const lostRaces = results.reduce((n, r) => n + r.lostRaces, 0);
      expect(results.reduce((n, r) => n + r.recomputed, 0)).toBe(10_000);
      expect(tracker.counts.size).toBe(10_000);
      expect([...tracker.counts.values()].every((n) => n === 1)).toBe(true);
      expect(tracker.overlaps).toEqual([]);
      expect(lostRaces).toBeGreaterThan(0);
      const s = await workers[0]!.stats();
      expect([s.pending, s.inflight, s.delayed, s.dead]).toEqual([0, 0, 0, 0]);
    },
  );

  it('batch claims from 4 processes-worth of drainers also recompute each parent once', async () => {
    const ns = `drain-${suffix()}`;
    const tracker = new Tracker();
    const workers = Array.from({ length: 4 }, () => make(ns, tracker));
    await workers[0]!.mark(
      Doc,
      Array.from({ length: 5_000 }, (_, i) => i + 1),
    );
    await Promise.all(workers.map((w) => w.drain({ concurrency: 4 })));
    expect(tracker.total).toBe(5_000);
    expect(tracker.counts.size).toBe(5_000);
    expect(tracker.overlaps).toEqual([]);
  });

  it('a claim never acknowledged (a crashed worker) comes back with its heat after the lease', async () => {
    const ns = `drain-${suffix()}`;
    const tracker = new Tracker();
    const crashed = make(ns, tracker, { leaseMs: 300 });
    for (let i = 0; i < 3; i += 1) await crashed.mark(Doc, 5);
    // The crashed worker claims and dies before its ack.
    const [claim] = await crashedClaims(crashed, 1, 300);
    expect(claim?.member).toBe('Doc:5');
    const survivor = make(ns, tracker, { leaseMs: 300 });
    expect((await survivor.drain()).recomputed).toBe(0);
    expect((await survivor.stats()).inflight).toBe(1);
    await waitFor(async () => (await survivor.stats()).expired === 1, 'the lease to expire');
    const r = await survivor.drain();
    expect(r.reaped).toBe(1);
    expect(r.recomputed).toBe(1);
    expect(tracker.counts.get('Doc:5')).toBe(1);
    // A late ack from the worker that lost its lease ends nothing, but its write may have
    // landed after the newer recompute: the parent is marked for one more.
    expect(
      await internals(crashed).outcomes.ack([{ key: claim!.key, token: claim!.token, base: 0 }], crashed.clock.now()),
    ).toEqual({
      acked: 0,
      rearmed: 0,
      superseded: 1,
    });
    expect((await survivor.drain()).recomputed).toBe(1);
    expect(tracker.counts.get('Doc:5')).toBe(2);
  });

  it('the heat of a parent given back after a crash is kept', async () => {
    const ns = `drain-${suffix()}`;
    const c = make(ns, new Tracker(), { leaseMs: 200 });
    for (let i = 0; i < 7; i += 1) await c.mark(Doc, 9);
    await crashedClaims(c, 1, 200);
    await c.mark(Doc, 9); // a mark during the hold
    await waitFor(async () => (await c.stats()).expired === 1, 'the lease to expire');
    await c.requeue();
    expect(await c.hottest()).toEqual([{ member: 'Doc:9', heat: 8 }]);
  });

  it('a mark during a recompute causes exactly one more recompute, in the same drain', async () => {
    const ns = `drain-${suffix()}`;
    const tracker = new Tracker();
    let marks = 0;
    const c: Coalescer = make(ns, tracker, {
      recompute: (id) =>
        tracker.around(`Doc:${id}`, async () => {
          if (marks < 3) {
            marks += 1;
            if (marks === 1) await Promise.all([c.mark(Doc, id), c.mark(Doc, id), c.mark(Doc, id)]);
          }
        }),
    });
    await c.mark(Doc, 1);
    const r = await c.drain();
    expect(r.recomputed).toBe(2);
    expect(r.rearmed).toBe(1);
    expect(tracker.counts.get('Doc:1')).toBe(2);
    expect((await c.stats()).pending).toBe(0);
  });

  it('hottest first, and max bounds a drain', async () => {
    const ns = `drain-${suffix()}`;
    const tracker = new Tracker();
    const c = make(ns, tracker);
    for (const [id, heat] of [
      [1, 1],
      [2, 5],
      [3, 3],
      [4, 9],
    ] as const)
      for (let k = 0; k < heat; k += 1) await c.mark(Doc, id);
    expect((await c.drain({ window: 1, max: 3 })).recomputed).toBe(3);
    expect(tracker.order).toEqual(['Doc:4', 'Doc:2', 'Doc:3']);
    expect(await c.hottest()).toEqual([{ member: 'Doc:1', heat: 1 }]);
  });

  it('string ids, with ":" in them, round trip through members', async () => {
    const ns = `drain-${suffix()}`;
    const seen: string[] = [];
    const c = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: ns, logger: testLogger() });
    c.parent<string>(Sku, { recompute: async (code) => void seen.push(code) });
    open.push(c);
    await c.mark(Sku, ['a:b:c', 'plain', '42']);
    await c.drain();
    expect(seen.sort()).toEqual(['42', 'a:b:c', 'plain']);
  });

  it('recomputeMany gets batches; a failing batch falls back to one by one', async () => {
    const ns = `drain-${suffix()}`;
    const tracker = new Tracker();
    const batches: number[][] = [];
    const c = make(ns, tracker, {
      batchSize: 10,
      recomputeMany: async (ids) => {
        batches.push([...ids]);
        if (ids.includes(13)) throw new Error('one bad parent in the batch');
        for (const id of ids) await tracker.around(`Doc:${id}`);
      },
      recompute: async (id) => {
        if (id === 13) throw new Error('bad parent');
        await tracker.around(`Doc:${id}`);
      },
      retry: { attempts: 1, baseMs: 0, maxMs: 0 },
    });
    await c.mark(
      Doc,
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
    const r = await c.drain();
    expect(batches.every((b) => b.length <= 10)).toBe(true);
    expect(r.recomputed).toBe(24);
    expect(r.failed).toBe(1);
    expect(tracker.counts.size).toBe(24);
    expect((await c.dead.list()).map((d) => d.member)).toEqual(['Doc:13']);
  });

  it('a failing recompute is retried with backoff, then dead-lettered; a new mark gives a fresh start', async () => {
    const ns = `drain-${suffix()}`;
    let calls = 0;
    const c = make(ns, new Tracker(), {
      recompute: async () => {
        calls += 1;
        throw new Error('database says no');
      },
      retry: { attempts: 3, baseMs: 20, maxMs: 40 },
    });
    await c.mark(Doc, 3);
    const first = await c.drain();
    expect(first.failed).toBe(1);
    expect(first.deadLettered).toBe(0);
    // Waiting for its retry it is held: neither pending nor claimable.
    expect(await c.stats()).toMatchObject({ pending: 0, delayed: 1, dead: 0 });
    await waitFor(async () => {
      await c.drain();
      return (await c.stats()).dead === 1;
    }, 'the parent to be dead-lettered');
    expect(calls).toBe(3);
    const [dead] = await c.dead.list();
    expect(dead).toMatchObject({ member: 'Doc:3', attempts: 3, error: 'Error: database says no' });
    expect((await c.stats()).delayed).toBe(0);
    await c.mark(Doc, 3);
    expect(await c.stats()).toMatchObject({ pending: 1, dead: 0 });
    await c.drain();
    expect(calls).toBe(4);
    await waitFor(async () => {
      await c.drain();
      return (await c.stats()).dead === 1;
    }, 'the parent to be dead-lettered again');
    expect(await c.dead.retry('all')).toBe(1);
    expect(await c.stats()).toMatchObject({ pending: 1, dead: 0 });
    await waitFor(async () => {
      await c.drain();
      return (await c.stats()).dead === 1;
    }, 'the third dead-lettering');
    expect(await c.dead.purge('Doc:3')).toBe(1);
    expect(await c.stats()).toMatchObject({ pending: 0, delayed: 0, dead: 0, inflight: 0 });
  });

  it('a recompute that hangs is aborted after recomputeTimeoutMs and counts as a failure', async () => {
    const ns = `drain-${suffix()}`;
    let aborted: unknown;
    const c = make(ns, new Tracker(), {
      leaseMs: 2_000,
      recomputeTimeoutMs: 100,
      retry: { attempts: 1, baseMs: 0, maxMs: 0 },
      recompute: (_id, { signal }) =>
        new Promise<void>((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted = signal.reason;
            reject(signal.reason);
          });
        }),
    });
    await c.mark(Doc, 1);
    const r = await c.drain();
    expect(r.failed).toBe(1);
    expect(aborted).toBeInstanceOf(RecomputeTimeoutError);
    expect((await c.dead.list())[0]?.error).toMatch(/RecomputeTimeoutError/);
  });

  it('a recompute that ignores its signal and ends late causes one more recompute', async () => {
    const ns = `drain-${suffix()}`;
    const tracker = new Tracker();
    let release: () => void = () => undefined;
    let calls = 0;
    const c = make(ns, tracker, {
      leaseMs: 2_000,
      recomputeTimeoutMs: 100,
      retry: { attempts: 3, baseMs: 0, maxMs: 0 },
      recompute: async (id) => {
        calls += 1;
        // The first run outlives its timeout and then writes; later runs are quick.
        if (calls === 1) await new Promise<void>((resolve) => (release = resolve));
        await tracker.around(`Doc:${id}`);
      },
    });
    await c.mark(Doc, 4);
    expect((await c.drain()).failed).toBe(1);
    await waitFor(async () => {
      await c.drain();
      return tracker.counts.get('Doc:4') === 1;
    }, 'the retry to recompute');
    release();
    // The late write landed after the retry's: the parent is recomputed once more.
    await waitFor(async () => {
      await c.drain();
      return tracker.counts.get('Doc:4') === 3;
    }, 'one more recompute after the late write');
    expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
  });

  it('malformed members are dead-lettered with a reason and the drain goes on', async () => {
    const ns = `drain-${suffix()}`;
    const tracker = new Tracker();
    const c = make(ns, tracker);
    await c.mark(Doc, [1, 2]);
    const raw = redisClient();
    await raw.zadd(c.keys.pending, 1e12 + 100, 'no-colon', 1e12 + 99, 'Ghost:1', 1e12 + 98, 'Doc:abc', 1e12 + 97, 'Doc:');
    raw.disconnect();
    const r = await c.drain();
    expect(r.recomputed).toBe(2);
    expect(r.deadLettered).toBe(4);
    const dead = Object.fromEntries((await c.dead.list()).map((d) => [d.member, d.error]));
    expect(dead['no-colon']).toMatch(/expected "<Type>:<id>"/);
    expect(dead['Ghost:1']).toMatch(/unknown parent type Ghost/);
    expect(dead['Doc:abc']).toMatch(/not an integer/);
    expect(dead['Doc:']).toMatch(/empty id/);
    expect(tracker.counts.size).toBe(2);
  });
});
