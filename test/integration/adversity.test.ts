import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coalescer, RegistrationError, type CoalescerOptions, type ParentOptions } from '../../src';
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('correct under adversity', () => {
  let db: TestDb;
  const open: Coalescer[] = [];
  beforeAll(async () => {
    db = await createTestDb('adversity', { entities: [Doc] });
  });
  afterAll(async () => {
    await disposeAll(open);
    await db.destroy();
  });

  /** A worker of namespace `ns`: its own Coalescer (own connections), Doc registered with `parent`. */
  function worker(ns: string, parent: Partial<ParentOptions<number>>, options: Partial<CoalescerOptions> = {}): Coalescer {
    const c = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: ns, logger: testLogger(), ...options });
    c.parent<number>(Doc, { recompute: async () => undefined, ...parent });
    open.push(c);
    return c;
  }

  it('recomputes several times longer than the lease never overlap: leases are renewed while they run', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    // Three leases long each; the lease still leaves room for a loaded 2-core machine's pauses.
    const slow = { recompute: (id: number) => t.around(`Doc:${id}`, 1_200) };
    const a = worker(ns, slow, { leaseMs: 400 });
    const b = worker(ns, slow, { leaseMs: 400 });
    await a.mark(Doc, [1, 2, 3, 4, 5, 6]);
    const drains = [a.drain({ concurrency: 3 }), b.drain({ concurrency: 3 })];
    // A third worker keeps reaping expired leases meanwhile: none may expire.
    const reaper = worker(ns, slow, { leaseMs: 400 });
    let reaped = 0;
    for (let i = 0; i < 10; i += 1) {
      await sleep(150);
      reaped += (await reaper.requeue()).reaped;
    }
    const results = await Promise.all(drains);
    expect(reaped).toBe(0);
    expect(t.overlaps).toEqual([]);
    expect(t.total).toBe(6);
    for (let id = 1; id <= 6; id += 1) expect(t.of(`Doc:${id}`)).toBe(1);
    expect(results.reduce((n, r) => n + r.superseded, 0)).toBe(0);
    expect(await a.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0, expired: 0 });
  });

  it('a failing recomputeMany falls back one by one, each under a live lease, never alongside another worker', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    const parent: Partial<ParentOptions<number>> = {
      batchSize: 10,
      recomputeMany: async () => {
        await sleep(100);
        throw new Error('the batch statement failed');
      },
      recompute: (id) => t.around(`Doc:${id}`, 120),
    };
    const a = worker(ns, parent, { leaseMs: 150 });
    const b = worker(ns, parent, { leaseMs: 150 });
    await a.mark(Doc, [1, 2, 3, 4, 5]);
    const first = a.drain({ window: 10 });
    // The fallback takes ~700 ms, over four leases: another worker drains all along.
    for (let i = 0; i < 6; i += 1) {
      await sleep(120);
      await b.drain();
    }
    await first;
    expect(t.overlaps).toEqual([]);
    for (let id = 1; id <= 5; id += 1) expect(t.of(`Doc:${id}`)).toBe(1);
  });

  it('a late ack of a parent that is settling again leaves it in settling only, recomputed once after its quiet period', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    const c = worker(ns, { settleMs: 150, recompute: (id) => t.around(`Doc:${id}`) }, { leaseMs: 150 });
    await c.mark(Doc, 7);
    await sleep(200);
    await c.requeue();
    await c.drain({ max: 0 }); // promotes the settled parent, claims nothing
    // A worker claims it and stalls past its lease; the parent is given back and marked again.
    const [stalled] = await crashedClaims(c, 1, 150);
    expect(stalled?.member).toBe('Doc:7');
    await sleep(200);
    await c.requeue();
    await c.mark(Doc, 7);
    // The stalled worker's late ack: superseded, it marks once more, through the same rules.
    expect(
      await internals(c).outcomes.ack([{ key: stalled!.key, token: stalled!.token, base: 1e12 }], c.clock.now()),
    ).toMatchObject({
      superseded: 1,
    });
    const raw = redisClient();
    const [pending, settling] = await Promise.all([raw.zscore(c.keys.pending, 'Doc:7'), raw.zscore(c.keys.settling, 'Doc:7')]);
    raw.disconnect();
    expect(pending).toBeNull();
    expect(settling).not.toBeNull();
    await sleep(200);
    expect((await c.drain()).recomputed).toBe(1);
    expect(t.of('Doc:7')).toBe(1);
    expect(await c.stats()).toMatchObject({ pending: 0, settling: 0, inflight: 0 });
  });

  it('two drainers: each parent marked once is recomputed once, acks never held until a lease expires', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    const parent = { recompute: (id: number) => t.around(`Doc:${id}`, 25) };
    const a = worker(ns, parent, { leaseMs: 200 });
    const b = worker(ns, parent, { leaseMs: 200 });
    const ids = Array.from({ length: 30 }, (_, i) => i + 1);
    await a.mark(Doc, ids);
    const [ra, rb] = await Promise.all([a.drain(), b.drain()]);
    expect(t.overlaps).toEqual([]);
    expect(t.total).toBe(30);
    for (const id of ids) expect(t.of(`Doc:${id}`)).toBe(1);
    expect(ra.reaped + rb.reaped + ra.superseded + rb.superseded).toBe(0);
    expect(await a.stats()).toMatchObject({ pending: 0, inflight: 0 });
  });

  it('settled parents are promoted by a drain that does not register the quiet period', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    const settling = worker(ns, { settleMs: 100 });
    await settling.mark(Doc, [1, 2, 3]);
    expect((await settling.stats()).settling).toBe(3);
    // The type no longer settles anywhere: a process registering it plainly still drains them.
    const plain = worker(ns, { recompute: (id) => t.around(`Doc:${id}`) });
    await sleep(150);
    expect((await plain.drain()).recomputed).toBe(3);
    expect(await plain.stats()).toMatchObject({ settling: 0, pending: 0 });
    expect(t.total).toBe(3);
  });

  it('a member that is not UTF-8 is dead-lettered once; the drain never spins on it', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    const c = worker(ns, { recompute: (id) => t.around(`Doc:${id}`) });
    const raw = redisClient();
    await raw.zadd(c.keys.pending, 1e12 + 50, Buffer.from([0x44, 0x6f, 0x63, 0x3a, 0xff, 0xfe]));
    raw.disconnect();
    await c.mark(Doc, [1, 2]);
    const r = await c.drain();
    expect(r.recomputed).toBe(2);
    expect(r.deadLettered).toBe(1);
    expect(r.lostRaces).toBe(0);
    const [dead] = await c.dead.list();
    expect(dead?.error).toMatch(/not valid UTF-8/);
    expect(await c.drain()).toMatchObject({ claimed: 0, lostRaces: 0 });
    expect(await c.stats()).toMatchObject({ pending: 0, dead: 1 });
  });

  it('a parent spelled two ways (Doc:00042 and Doc:42) is one member: never recomputed twice at once', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    const a = worker(ns, { recompute: (id) => t.around(`Doc:${id}`, 50) });
    const b = worker(ns, { recompute: (id) => t.around(`Doc:${id}`, 50) });
    const raw = redisClient();
    await raw.zadd(a.keys.pending, 1e12 + 9, 'Doc:00042');
    raw.disconnect();
    await a.mark(Doc, 42);
    const results = await Promise.all([a.drain({ window: 1 }), b.drain({ window: 1 })]);
    expect(t.overlaps).toEqual([]);
    expect(t.of('Doc:42')).toBeGreaterThanOrEqual(1);
    expect([...t.counts.keys()]).toEqual(['Doc:42']);
    expect(results.reduce((n, r) => n + r.redirected, 0)).toBe(1);
    expect(await a.stats()).toMatchObject({ pending: 0, inflight: 0, dead: 0 });
    // Ids given to mark() are spelled canonically too.
    expect(await a.mark(Doc, ['7', '007', 7])).toBe(1);
    expect(await a.hottest()).toEqual([{ member: 'Doc:7', heat: 3 }]);
  });

  it('an id that is not a safe integer gives a RegistrationError naming it', async () => {
    const c = worker(`adv-${suffix()}`, {});
    await expect(c.mark(Doc, (2n ** 70n) as never)).rejects.toThrow(RegistrationError);
    await expect(c.mark(Doc, (2n ** 70n) as never)).rejects.toThrow(
      /Doc: id 1180591620717411303424n is outside the safe integer range/,
    );
    await expect(c.mark(Doc, 1.5)).rejects.toThrow(/Doc: id 1.5 is not an integer/);
    await expect(c.mark(Doc, 'abc')).rejects.toThrow(/Doc: id "abc" is not an integer/);
  });

  it('dead retry and purge take any number of members (100,000)', async () => {
    const ns = `adv-${suffix()}`;
    const c = worker(
      ns,
      {
        recompute: async () => {
          throw new Error('always');
        },
      },
      { retry: { attempts: 1, baseMs: 0, maxMs: 0 } },
    );
    const ids = Array.from({ length: 100_000 }, (_, i) => i + 1);
    await c.mark(Doc, ids);
    await c.drain({ concurrency: 8 });
    expect((await c.stats()).dead).toBe(100_000);
    const members = ids.map((id) => `Doc:${id}`);
    expect(await c.dead.retry(members)).toBe(100_000);
    expect(await c.stats()).toMatchObject({ dead: 0, pending: 100_000 });
    await c.drain({ concurrency: 8 });
    expect(await c.dead.purge(members)).toBe(100_000);
    expect(await c.stats()).toMatchObject({ dead: 0, pending: 0 });
  }, 180_000);

  it('marks racing three drainers, with a quiet period, a wait cap and crashed claims: every mark is covered by a later recompute, none overlap', async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    // A logical clock: a mark counts once mark() has resolved (Redis took it); a recompute
    // covers every mark counted before it started.
    let seq = 0;
    const markedAt = new Map<string, number>();
    const startedAt = new Map<string, number>();
    const recompute = async (id: number): Promise<void> => {
      startedAt.set(`Doc:${id}`, seq);
      await t.around(`Doc:${id}`, 1 + Math.floor(Math.random() * 6));
    };
    const policy = { recompute, settleMs: 15, maxWaitMs: 150 };
    const workers = [0, 1, 2].map(() => worker(ns, policy, { leaseMs: 400 }));
    const writer = worker(ns, policy, { leaseMs: 400 });
    const ids = Array.from({ length: 50 }, (_, i) => i + 1);
    let writing = true;
    const writes = (async () => {
      for (let round = 0; round < 150; round += 1) {
        const batch = ids.filter(() => Math.random() < 0.2);
        if (batch.length === 0) continue;
        await writer.mark(Doc, batch);
        seq += 1;
        for (const id of batch) markedAt.set(`Doc:${id}`, seq);
        if (round === 50) await crashedClaims(writer, 5, 400);
        await sleep(Math.random() * 3);
      }
      writing = false;
    })();
    const drains = workers.map(async (w) => {
      while (writing) {
        await w.drain({ concurrency: 4, window: 20 });
        await sleep(5);
      }
    });
    await writes;
    await Promise.all(drains);
    // Then until nothing waits: quiet periods end, crashed leases expire and come back.
    await waitFor(
      async () => {
        await Promise.all(workers.map((w) => w.drain({ concurrency: 4 })));
        const s = await writer.stats();
        return s.pending + s.settling + s.inflight + s.delayed === 0;
      },
      'every parent to be recomputed',
      30_000,
    );
    expect(t.overlaps).toEqual([]);
    const uncovered = [...markedAt].filter(([member, at]) => (startedAt.get(member) ?? -1) < at).map(([m]) => m);
    expect(uncovered).toEqual([]);
    expect(await writer.stats()).toMatchObject({ pending: 0, settling: 0, inflight: 0, delayed: 0, dead: 0, expired: 0 });
  }, 120_000);

  it("a client whose clock runs 1.5 s ahead does not take a lease that has 1.4 s left: deadlines are Redis' time", async () => {
    const ns = `adv-${suffix()}`;
    const t = new Tracker();
    const owner = worker(ns, { recompute: (id) => t.around(`Doc:${id}`) });
    await owner.mark(Doc, 3);
    await crashedClaims(owner, 1, 2_000);
    await sleep(600);
    const skewed = worker(ns, { recompute: (id) => t.around(`Doc:${id}`) }, { clock: () => Date.now() + 1_500 });
    const r = await skewed.drain();
    expect(r).toMatchObject({ reaped: 0, claimed: 0 });
    expect(await skewed.stats()).toMatchObject({ inflight: 1, expired: 0 });
    // Once the lease really expires, the skewed client reaps it like any other.
    await waitFor(async () => (await skewed.stats()).expired === 1, 'the lease to expire');
    expect((await skewed.drain()).recomputed).toBe(1);
    expect(t.of('Doc:3')).toBe(1);
  });
});
