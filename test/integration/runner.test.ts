import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Entity, PrimaryColumn } from 'typeorm';
import { Coalescer, ConfigError, type Runner, type TickEvent } from '../../src';
import { createTestDb, redisUrl, suffix, testLogger, waitFor, type TestDb } from '../helpers';

@Entity({ name: 'runner_doc' })
class Doc {
  @PrimaryColumn({ type: 'int' }) id!: number;
}

/** A promise with its resolve, to hold a recompute open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('runner', () => {
  let db: TestDb;
  const coalescers: Coalescer[] = [];
  const runners: Runner[] = [];
  beforeAll(async () => {
    db = await createTestDb('runner', { entities: [Doc] });
  });
  afterEach(async () => {
    // A test fails if it leaves a runner running.
    const left = runners.filter((r) => r.status === 'running' || r.status === 'stopping').map((r) => r.status);
    for (const r of runners.splice(0)) await r.stop();
    expect(left).toEqual([]);
  });
  afterAll(async () => {
    for (const c of coalescers) {
      await c.store.clear().catch(() => undefined); // one of them points at no Redis
      await c.close();
    }
    await db.destroy();
  });

  function make(recompute: (id: number) => Promise<void>, options: { redis?: string } = {}): Coalescer {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: options.redis ?? redisUrl(),
      namespace: `runner-${suffix()}`,
      logger: testLogger(),
      markTimeoutMs: 200,
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
    expect(() => c.runner({ concurrency: 0 })).toThrow(/runner option "concurrency" = 0/);
  });

  it('start and stop are idempotent and the status says where it is', async () => {
    const c = make(async () => undefined);
    const r = track(c.runner({ schedule: '0 0 1 1 *' }));
    expect(r.status).toBe('idle');
    r.start();
    r.start();
    expect(r.status).toBe('running');
    const stopping = r.stop();
    expect(r.status).toBe('stopping');
    await Promise.all([stopping, r.stop()]);
    expect(r.status).toBe('stopped');
    expect(() => r.start()).toThrow(/it is stopped/);
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

  it('a tick due while one runs is skipped and counted, never run alongside', async () => {
    const g = gate();
    let running = 0;
    let maxRunning = 0;
    const c = make(async () => {
      running += 1;
      maxRunning = Math.max(maxRunning, running);
      await g.promise;
      running -= 1;
    });
    const r = track(c.runner({ schedule: '0 0 1 1 *' }));
    r.start();
    await c.mark(Doc, 1);
    const first = r.tick();
    await waitFor(() => running === 1, 'the first tick to start its recompute');
    await r.tick();
    await r.tick();
    expect(r.counts.skipped).toBe(2);
    g.open();
    await first;
    expect(maxRunning).toBe(1);
    expect(r.counts.ticks).toBe(1);
    await r.stop();
  });

  it('stop() waits for recomputes in flight and loses nothing', async () => {
    const g = gate();
    const done: number[] = [];
    const c = make(async (id) => {
      await g.promise;
      done.push(id);
    });
    const r = track(c.runner({ schedule: '0 0 1 1 *', concurrency: 2 }));
    r.start();
    await c.mark(Doc, [1, 2, 3, 4, 5]);
    const tick = r.tick();
    await waitFor(async () => (await c.stats()).inflight > 0, 'recomputes to be in flight');
    const stopped = r.stop();
    expect(r.status).toBe('stopping');
    setTimeout(g.open, 50);
    await stopped;
    await tick;
    expect(r.status).toBe('stopped');
    // What had started finished; what had not was given back, none is lost.
    const s = await c.stats();
    expect(s.inflight).toBe(0);
    expect(done.length + s.pending).toBe(5);
    await c.drain();
    expect(done.sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('after stopTimeoutMs the parents still being recomputed go back to pending', async () => {
    const g = gate();
    const c = make(async () => g.promise);
    const r = track(c.runner({ schedule: '0 0 1 1 *', stopTimeoutMs: 100 }));
    r.start();
    await c.mark(Doc, 7);
    const tick = r.tick();
    await waitFor(async () => (await c.stats()).inflight === 1, 'the recompute to be in flight');
    await r.stop();
    expect(await c.stats()).toMatchObject({ pending: 1, inflight: 0 });
    g.open();
    await tick;
  });

  it('a tick that fails (Redis unreachable) is reported, not thrown, and the runner goes on', async () => {
    const c = make(async () => undefined, { redis: 'redis://127.0.0.1:1' });
    const r = track(c.runner({ schedule: '0 0 1 1 *' }));
    const ticks: TickEvent[] = [];
    r.on('tick', (t) => ticks.push(t));
    r.start();
    await r.tick();
    expect(ticks).toHaveLength(1);
    expect(ticks[0]?.error).toBeDefined();
    expect(r.counts.failed).toBe(1);
    expect(r.status).toBe('running');
    await r.stop();
  });
});
