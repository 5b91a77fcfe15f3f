import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import {
  Coalescer,
  ConfigError,
  StoppingError,
  type FailedEvent,
  type RecomputeContext,
  type Runner,
  type TickEvent,
} from '../../src';
import { coalesceMigrations } from '../../migrations';
import { createTestDb, redisClient, redisUrl, suffix, testLogger, waitFor, type TestDb, internals, Doc } from '../support';

/** A promise with its resolve, to hold a recompute open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** A pino logger whose lines are kept, parsed. */
function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

/** A schedule that never fires during a test: ticks are run by hand with `tick()`. */
const NEVER = '0 0 1 1 *';

describe('runner', () => {
  let db: TestDb;
  const coalescers: Coalescer[] = [];
  const runners: Runner[] = [];
  beforeAll(async () => {
    db = await createTestDb('runner', { entities: [Doc] });
    // The outbox table as the host's migrations make it: a drain relays it first.
    const queryRunner = db.dataSource.createQueryRunner();
    for (const Migration of coalesceMigrations) await new Migration().up(queryRunner);
    await queryRunner.release();
  });
  afterEach(async () => {
    // A test fails if it leaves a runner running.
    const left = runners.filter((r) => r.status === 'running' || r.status === 'stopping').map((r) => r.status);
    for (const r of runners.splice(0)) await r.stop();
    expect(left).toEqual([]);
  });
  afterAll(async () => {
    for (const c of coalescers) {
      await internals(c)
        .epochs.clear()
        .catch(() => undefined); // one of them points at no Redis
      await c.close();
    }
    await db.destroy();
  });

  function make(
    recompute: (id: number, ctx: RecomputeContext) => Promise<void>,
    options: { redis?: string; namespace?: string; logger?: pino.Logger; attempts?: number } = {},
  ): Coalescer {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: options.redis ?? redisUrl(),
      namespace: options.namespace ?? `runner-${suffix()}`,
      logger: options.logger ?? testLogger(),
      markTimeoutMs: 200,
      ...(options.attempts ? { retry: { attempts: options.attempts } } : {}),
    });
    c.parent<number>(Doc, { recompute });
    coalescers.push(c);
    return c;
  }
  function track(r: Runner): Runner {
    runners.push(r);
    return r;
  }

  it('rejects a bad cron expression, quoting it, and bad numbers naming them', () => {
    const c = make(async () => undefined);
    expect(() => c.runner({ schedule: 'every five seconds' })).toThrow(ConfigError);
    expect(() => c.runner({ schedule: 'every five seconds' })).toThrow(
      /"schedule" = "every five seconds": not a cron expression/,
    );
    expect(() => c.runner({ schedule: '*/5 * * * * * *' })).toThrow(/"\*\/5 \* \* \* \* \* \*"/);
    expect(() => c.runner({ schedule: '61 * * * *' })).toThrow(/"61 \* \* \* \*"/);
    expect(() => c.runner({ concurrency: 0 })).toThrow(/runner option "concurrency" = 0/);
    expect(() => c.runner({ maxTickMs: 1.5 })).toThrow(/runner option "maxTickMs" = 1.5/);
    // Five fields and six (seconds first) are both accepted; the default is every second.
    expect(c.runner({ schedule: '*/2 * * * *' }).options.schedule).toBe('*/2 * * * *');
    expect(c.runner().options.schedule).toBe('* * * * * *');
  });

  it('start and stop are idempotent and the status says where it is', async () => {
    const c = make(async () => undefined);
    const r = track(c.runner({ schedule: NEVER }));
    expect(r.status).toBe('idle');
    r.start();
    r.start();
    expect(r.status).toBe('running');
    const stopping = r.stop();
    expect(r.status).toBe('stopping');
    await Promise.all([stopping, r.stop()]);
    expect(r.status).toBe('stopped');
    expect(() => r.start()).toThrow(/it is stopped/);
    // Stopping a runner never started is allowed too.
    const idle = track(c.runner({ schedule: NEVER }));
    await idle.stop();
    expect(idle.status).toBe('stopped');
  });

  it('ticks on its schedule and recomputes what is marked, emitting tick and recomputed', async () => {
    const seen: number[] = [];
    const c = make(async (id) => void seen.push(id));
    const r = track(c.runner({ schedule: '* * * * * *' }));
    const ticks: TickEvent[] = [];
    const recomputed: string[] = [];
    r.on('tick', (t) => ticks.push(t));
    r.on('recomputed', (e) => recomputed.push(e.member));
    r.start();
    await c.mark(Doc, [1, 2, 3]);
    await waitFor(() => seen.length === 3, 'the runner to recompute 3 parents');
    await r.stop();
    expect(seen.sort()).toEqual([1, 2, 3]);
    expect(recomputed.sort()).toEqual(['Doc:1', 'Doc:2', 'Doc:3']);
    expect(ticks.length).toBeGreaterThan(0);
    expect(ticks.every((t) => t.error === undefined)).toBe(true);
    expect(ticks.reduce((n, t) => n + (t.result?.recomputed ?? 0), 0)).toBe(3);
  });

  it('with a slow recompute and a fast schedule, ticks due meanwhile are skipped and counted, never run alongside', async () => {
    const g = gate();
    let running = 0;
    let maxRunning = 0;
    const done: number[] = [];
    const c = make(async (id) => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      await g.promise;
      running -= 1;
      done.push(id);
    });
    // One recompute at a time per tick: a second tick run alongside would make it two.
    const r = track(c.runner({ schedule: '* * * * * *', concurrency: 1 }));
    await c.mark(
      Doc,
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
    r.start();
    await waitFor(() => running === 1, 'the first tick to start a recompute');
    await waitFor(() => r.counts.skipped >= 1, 'a tick to fall due while the first one runs');
    expect(maxRunning).toBe(1);
    g.open();
    await waitFor(() => done.length === 10, 'the 10 parents to be recomputed');
    await r.stop();
    expect(maxRunning).toBe(1);
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(r.counts.ticks).toBeGreaterThanOrEqual(1);
  });

  it('tick() by hand is skipped while a tick runs', async () => {
    const g = gate();
    let running = 0;
    const c = make(async () => {
      running += 1;
      await g.promise;
    });
    const r = track(c.runner({ schedule: NEVER }));
    r.start();
    await c.mark(Doc, 1);
    const first = r.tick();
    await waitFor(() => running === 1, 'the first tick to start its recompute');
    await r.tick();
    await r.tick();
    expect(r.counts.skipped).toBe(2);
    g.open();
    await first;
    expect(r.counts.ticks).toBe(1);
    await r.stop();
  });

  it('two runners on one namespace recompute each parent exactly once, never two at once', async () => {
    const namespace = `runner-${suffix()}`;
    const counts = new Map<number, number>();
    const busy = new Set<number>();
    let overlapped = 0;
    const recompute = async (id: number): Promise<void> => {
      if (busy.has(id)) overlapped += 1;
      busy.add(id);
      await new Promise((resolve) => setImmediate(resolve));
      busy.delete(id);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    };
    const a = make(recompute, { namespace });
    const b = make(recompute, { namespace });
    const ids = Array.from({ length: 400 }, (_, i) => i + 1);
    await a.mark(Doc, ids);
    const ra = track(a.runner({ schedule: '* * * * * *', concurrency: 4 }));
    const rb = track(b.runner({ schedule: '* * * * * *', concurrency: 4 }));
    const perRunner = { a: 0, b: 0 };
    ra.on('recomputed', () => (perRunner.a += 1));
    rb.on('recomputed', () => (perRunner.b += 1));
    ra.start();
    rb.start();
    await waitFor(() => counts.size === ids.length, 'every parent to be recomputed');
    await Promise.all([ra.stop(), rb.stop()]);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(overlapped).toBe(0);
    expect(perRunner.a + perRunner.b).toBe(ids.length);
    expect(await a.stats()).toMatchObject({ pending: 0, inflight: 0 });
  });

  it('stop() waits for recomputes in flight and loses nothing', async () => {
    const g = gate();
    const done: number[] = [];
    const c = make(async (id) => {
      await g.promise;
      done.push(id);
    });
    const r = track(c.runner({ schedule: NEVER, concurrency: 2 }));
    r.start();
    await c.mark(Doc, [1, 2, 3, 4, 5]);
    const tick = r.tick();
    await waitFor(async () => (await c.stats()).inflight > 0, 'recomputes to be in flight');
    const stopped = r.stop();
    expect(r.status).toBe('stopping');
    setTimeout(g.open, 50);
    await stopped;
    expect(r.status).toBe('stopped');
    // The recomputes that had started finished before stop() resolved.
    const finished = done.length;
    expect(finished).toBeGreaterThan(0);
    await tick;
    expect(done.length).toBe(finished);
    // What had not started was given back; none is lost.
    const s = await c.stats();
    expect(s.inflight).toBe(0);
    expect(done.length + s.pending).toBe(5);
    await c.drain();
    expect(done.sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('after stopTimeoutMs a recompute that honours its signal gives its parent back at once, with the ones not started', async () => {
    let started = 0;
    let aborted: unknown;
    const c = make(async (_id, { signal }) => {
      started += 1;
      await new Promise<void>((_resolve, reject) =>
        signal.addEventListener('abort', () => {
          aborted = signal.reason;
          reject(signal.reason as Error);
        }),
      );
    });
    // Concurrency 1: one parent runs, the next is claimed ahead and waits for the slot.
    const r = track(c.runner({ schedule: NEVER, concurrency: 1, stopTimeoutMs: 100 }));
    r.start();
    await c.mark(Doc, [1, 2, 3, 4, 5]);
    const tick = r.tick();
    await waitFor(async () => (await c.stats()).inflight >= 2, 'a parent running and one claimed ahead');
    await r.stop();
    await tick;
    expect(r.status).toBe('stopped');
    expect(started).toBe(1);
    expect(aborted).toBeInstanceOf(StoppingError);
    // Nothing waits on a lease: a process exiting now leaves every parent to the next runner.
    expect(await c.stats()).toMatchObject({ pending: 5, inflight: 0, delayed: 0, dead: 0 });
  });

  it('after stopTimeoutMs a recompute that ignores its signal keeps its parent until it ends: never two at once', async () => {
    const g = gate();
    let started = 0;
    const c = make(async () => {
      started += 1;
      await g.promise;
    });
    const r = track(c.runner({ schedule: NEVER, concurrency: 1, stopTimeoutMs: 100 }));
    r.start();
    await c.mark(Doc, [1, 2, 3, 4, 5]);
    const tick = r.tick();
    await waitFor(async () => (await c.stats()).inflight >= 2, 'a parent running and one claimed ahead');
    await r.stop();
    expect(r.status).toBe('stopped');
    expect(started).toBe(1);
    // The running parent stays leased (no other worker may start it); the others are back.
    expect(await c.stats()).toMatchObject({ pending: 4, inflight: 1 });
    const other = make(async () => undefined, { namespace: c.namespace });
    expect((await other.drain()).recomputed).toBe(4);
    g.open();
    await tick;
    // It ended within its lease: acknowledged, nothing left anywhere.
    expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
  });

  it('stop() of a runner never started waits for a tick run by hand', async () => {
    const g = gate();
    let finished = false;
    const c = make(async () => {
      await g.promise;
      finished = true;
    });
    const r = track(c.runner({ schedule: NEVER }));
    await c.mark(Doc, 1);
    const tick = r.tick();
    await waitFor(async () => (await c.stats()).inflight === 1, 'the recompute to be in flight');
    const stopped = r.stop();
    expect(r.status).toBe('stopping');
    setTimeout(g.open, 20);
    await stopped;
    expect(finished).toBe(true);
    expect(r.status).toBe('stopped');
    await tick;
  });

  it('a tick that fails (Redis unreachable) is reported, not thrown, and the runner goes on', async () => {
    const c = make(async () => undefined, { redis: 'redis://127.0.0.1:1' });
    const r = track(c.runner({ schedule: NEVER }));
    const ticks: TickEvent[] = [];
    r.on('tick', (t) => ticks.push(t));
    r.start();
    await r.tick();
    expect(ticks).toHaveLength(1);
    expect(ticks[0]?.error).toBeDefined();
    expect(ticks[0]?.result).toBeUndefined();
    expect(r.counts.failed).toBe(1);
    expect(r.status).toBe('running');
    await r.stop();
  });

  it('listeners that throw change nothing: the recompute counts as done, the tick goes on', async () => {
    const c = make(async () => undefined);
    const r = track(c.runner({ schedule: NEVER }));
    const results: TickEvent[] = [];
    r.on('tick', (t) => results.push(t));
    r.on('recomputed', () => {
      throw new Error('listener bug');
    });
    r.on('tick', () => {
      throw new Error('listener bug');
    });
    r.start();
    await c.mark(Doc, [1, 2]);
    await expect(r.tick()).resolves.toBeUndefined();
    expect(results[0]?.result).toMatchObject({ recomputed: 2, failed: 0 });
    expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
    await r.stop();
  });

  it('logs one info line per tick with counts and duration, one line per failed recompute, each with its worker', async () => {
    const { logger, lines } = capturingLogger();
    const g = gate();
    const c = make(
      async (id) => {
        if (id === 13) throw new Error('no such total');
        if (id === 99) await g.promise;
      },
      { logger, attempts: 1 },
    );
    const r = track(c.runner({ schedule: NEVER }));
    const failed: FailedEvent[] = [];
    r.on('failed', (e) => failed.push(e));
    r.start();
    await c.mark(Doc, [1, 2, 13]);
    await r.tick();
    const ticks = lines.filter((l) => l.msg === 'tick');
    expect(ticks).toHaveLength(1);
    expect(ticks[0]).toMatchObject({ level: 30, claimed: 3, recomputed: 2, failed: 1, worker: c.worker });
    expect(typeof ticks[0]?.durationMs).toBe('number');
    const failures = lines.filter((l) => l.member === 'Doc:13');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ level: 40, worker: c.worker, dead: true });
    expect(String(failures[0]?.err)).toContain('no such total');
    expect(failed).toMatchObject([{ member: 'Doc:13', dead: true }]);
    // A skipped tick is counted and logged at debug only, never as a warning.
    await c.mark(Doc, 99);
    const slow = r.tick();
    await waitFor(async () => (await c.stats()).inflight === 1, 'the slow recompute to be in flight');
    const before = lines.length;
    await r.tick();
    expect(r.counts.skipped).toBe(1);
    expect(lines.slice(before).map((l) => l.level)).toEqual([20]);
    g.open();
    await slow;
    await r.stop();
    // Besides the failure, a process that runs a runner says once what in Redis' settings may
    // lose marks (the test server may run without persistence).
    const risky = async (): Promise<number> => {
      const redis = redisClient();
      try {
        const [policy, aof, save] = await Promise.all(
          ['maxmemory-policy', 'appendonly', 'save'].map(async (name) => ((await redis.config('GET', name)) as string[])[1]),
        );
        return Number(policy !== 'noeviction') + Number(aof === 'no' && !save);
      } finally {
        redis.disconnect();
      }
    };
    const settings = (): Record<string, unknown>[] =>
      lines.filter((l) => /^Redis (has no persistence|maxmemory-policy)/.test(String(l.msg)));
    const expected = await risky();
    await waitFor(() => settings().length >= expected, "the runner's word on Redis' settings");
    expect(settings().map((l) => l.level)).toEqual(Array.from({ length: expected }, () => 40));
    const warnings = lines.filter((l) => typeof l.level === 'number' && l.level >= 40);
    expect(warnings.filter((l) => !settings().includes(l))).toEqual([failures[0]]);
  });
});
