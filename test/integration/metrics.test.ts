import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Entity, PrimaryColumn } from 'typeorm';
import { Registry, register as globalRegistry } from 'prom-client';
import { Coalescer, coalescerMetrics, serveMetrics, type DrainResult, type MetricsServer, type Runner } from '../../src';
import { coalesceMigrations } from '../../migrations';
import { createTestDb, redisUrl, suffix, testLogger, waitFor, type TestDb, internals, Doc } from '../support';

@Entity({ name: 'metrics_note' })
class Note {
  @PrimaryColumn({ type: 'int' }) id!: number;
}

/** Fetches the endpoint; the text of a 200 answer. */
async function scrape(server: MetricsServer): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
}

/** The value of one sample line, e.g. `coalesce_pending` or `coalesce_recomputes_total{parent="Doc"}`. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('Prometheus metrics', () => {
  let db: TestDb;
  const coalescers: Coalescer[] = [];
  const runners: Runner[] = [];
  const servers: MetricsServer[] = [];

  beforeAll(async () => {
    db = await createTestDb('metrics', { entities: [Doc, Note] });
    const queryRunner = db.dataSource.createQueryRunner();
    for (const Migration of coalesceMigrations) await new Migration().up(queryRunner);
    await queryRunner.release();
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    // A test fails if it leaves a runner running.
    const left = runners.filter((r) => r.status === 'running' || r.status === 'stopping').map((r) => r.status);
    for (const r of runners.splice(0)) await r.stop();
    expect(left).toEqual([]);
  });
  afterAll(async () => {
    for (const c of coalescers) {
      await internals(c)
        .epochs.clear()
        .catch(() => undefined);
      await c.close();
    }
    await db.destroy();
  });

  function make(
    recompute: (type: 'Doc' | 'Note', id: number) => Promise<void>,
    options: { redis?: string; namespace?: string } = {},
  ): Coalescer {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: options.redis ?? redisUrl(),
      namespace: options.namespace ?? `metrics-${suffix()}`,
      logger: testLogger(),
      markTimeoutMs: 2_000,
      retry: { attempts: 1 },
    });
    c.parent<number>(Doc, { recompute: (id) => recompute('Doc', id) });
    c.parent<number>(Note, { recompute: (id) => recompute('Note', id) });
    coalescers.push(c);
    return c;
  }

  it('serves set sizes, recomputes and failures by parent type, durations, ticks and skipped ticks', async () => {
    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    const c = make(async (type, id) => {
      if (type === 'Note' && id === 13) throw new Error('bad note');
      if (type === 'Doc' && id === 99) await hold;
    });
    const runner = c.runner({ schedule: '0 0 1 1 *' });
    runners.push(runner);
    const server = await serveMetrics(c, runner, 0);
    servers.push(server);
    runner.start();

    await c.mark(Doc, [1, 2, 3, 4]);
    await c.mark(Note, [1, 2, 13]);
    let text = await scrape(server);
    expect(sample(text, 'coalesce_up')).toBe(1);
    expect(sample(text, 'coalesce_pending')).toBe(7);
    expect(sample(text, 'coalesce_inflight')).toBe(0);
    expect(sample(text, 'coalesce_dead')).toBe(0);
    expect(sample(text, 'coalesce_oldest_pending_seconds')).toBeGreaterThanOrEqual(0);

    const results: DrainResult[] = [];
    runner.on('tick', (t) => t.result && results.push(t.result));
    await runner.tick();
    text = await scrape(server);
    expect(sample(text, 'coalesce_pending')).toBe(0);
    expect(sample(text, 'coalesce_dead')).toBe(1);
    expect(sample(text, 'coalesce_recomputes_total{parent="Doc"}')).toBe(4);
    expect(sample(text, 'coalesce_recomputes_total{parent="Note"}')).toBe(2);
    expect(sample(text, 'coalesce_failures_total{parent="Note",dead="true"}')).toBe(1);
    expect(sample(text, 'coalesce_recompute_duration_seconds_count{parent="Doc"}')).toBe(4);
    expect(sample(text, 'coalesce_recompute_duration_seconds_count{parent="Note"}')).toBe(2);
    expect(sample(text, 'coalesce_tick_duration_seconds_count')).toBe(1);
    expect(sample(text, 'coalesce_lost_races_total')).toBe(results[0]?.lostRaces);
    expect(sample(text, 'coalesce_ticks_skipped_total')).toBe(0);
    expect(sample(text, 'coalesce_wait_p50_seconds')).toBeGreaterThanOrEqual(0);

    // A recompute held open is in flight; a tick due meanwhile is skipped, and counted at once.
    await c.mark(Doc, 99);
    const slow = runner.tick();
    await waitFor(async () => (await c.stats()).inflight === 1, 'the slow recompute to be in flight');
    await runner.tick();
    text = await scrape(server);
    expect(sample(text, 'coalesce_inflight')).toBe(1);
    expect(sample(text, 'coalesce_ticks_skipped_total')).toBe(1);
    release();
    await slow;
    text = await scrape(server);
    expect(sample(text, 'coalesce_inflight')).toBe(0);
    expect(sample(text, 'coalesce_recomputes_total{parent="Doc"}')).toBe(5);
    expect(sample(text, 'coalesce_tick_duration_seconds_count')).toBe(2);
    await runner.stop();

    // Only /metrics answers; the global registry is left alone.
    expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
    expect(await globalRegistry.metrics()).not.toContain('coalesce_');
  });

  it('counts the lost races of every drain, runner or not, as the drains report them', async () => {
    const namespace = `metrics-${suffix()}`;
    const noop = async (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const a = make(noop, { namespace });
    const b = make(noop, { namespace });
    const server = await serveMetrics(a, undefined, 0);
    servers.push(server);
    let lost = 0;
    a.on('drained', (r) => (lost += r.lostRaces));
    await a.mark(
      Doc,
      Array.from({ length: 3000 }, (_, i) => i + 1),
    );
    // Two workers reading the top of one set with small windows: each may lose some claims.
    const [ra, rb] = await Promise.all([a.drain({ concurrency: 4, window: 20 }), b.drain({ concurrency: 4, window: 20 })]);
    expect(ra.recomputed + rb.recomputed).toBe(3000);
    const text = await scrape(server);
    expect(sample(text, 'coalesce_lost_races_total')).toBe(lost);
    expect(sample(text, 'coalesce_recomputes_total{parent="Doc"}')).toBe(ra.recomputed);
    expect(sample(text, 'coalesce_tick_duration_seconds_count')).toBe(0);
  });

  it('still answers when Redis does not: coalesce_up 0 beside the counters', async () => {
    const c = make(async () => undefined, { redis: 'redis://127.0.0.1:1' });
    const server = await serveMetrics(c, undefined, 0);
    servers.push(server);
    const text = await scrape(server);
    expect(sample(text, 'coalesce_up')).toBe(0);
    expect(text).toContain('# TYPE coalesce_recomputes_total counter');
  });

  it('registers on the host registry when given one, and close() stops the endpoint', async () => {
    const c = make(async () => undefined);
    const host = new Registry();
    const metrics = coalescerMetrics(c, { registry: host });
    await c.mark(Doc, [1, 2]);
    await c.drain();
    const text = await host.metrics();
    expect(sample(text, 'coalesce_recomputes_total{parent="Doc"}')).toBe(2);
    metrics.close();
    await c.mark(Doc, 3);
    await c.drain();
    expect(sample(await host.metrics(), 'coalesce_recomputes_total{parent="Doc"}')).toBe(2);

    const server = await serveMetrics(c, undefined, 0);
    await scrape(server);
    await server.close();
    await expect(fetch(`http://127.0.0.1:${server.port}/metrics`)).rejects.toThrow();
  });
});
