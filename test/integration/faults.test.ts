import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Redis } from 'ioredis';
import { Coalescer } from '../../src';
import {
  countMismatches,
  createTestDb,
  databaseUrl,
  dispose,
  Order,
  OrderLine,
  RecomputeLog,
  recomputeOrders,
  redisUrl,
  seedOrders,
  shopCoalescer,
  suffix,
  waitFor,
  type TestDb,
} from '../support';
import { OwnRedis } from '../support/servers';

const root = join(__dirname, '..', '..');

/** Lines of a line item for `orderId`. */
const line = (orderId: number, n: number) => ({ orderId, sku: `f${n}`, qty: 1 + (n % 4), unitPrice: '3.00' });

describe('faults: Redis down, workers killed, PostgreSQL errors', () => {
  let db: TestDb;
  const closing: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    db = await createTestDb('faults');
    await db.dataSource.query(
      `CREATE TABLE recompute_log (id serial PRIMARY KEY, member text NOT NULL, pid int NOT NULL,
                                   started_at timestamptz NOT NULL, ended_at timestamptz)`,
    );
  });
  afterAll(async () => {
    for (const close of closing.reverse()) await close().catch(() => undefined);
    await db.destroy();
  });

  it('Redis killed while marking and while draining: saves succeed, marks wait in the outbox, all converges', async () => {
    const redis = new OwnRedis();
    closing.push(() => redis.destroy());
    await redis.start();
    let recomputing = 0;
    const c = shopCoalescer(db.dataSource, {
      redis: redis.url,
      markTimeoutMs: 300,
      leaseMs: 1_500,
      before: async () => {
        recomputing += 1;
        await sleep(20);
      },
    });
    closing.push(() => c.close());
    await c.attach();
    const orders = await seedOrders(db.dataSource, 20, 0);
    const lines = db.dataSource.getRepository(OrderLine);
    for (const [i, id] of orders.entries()) await lines.save(lines.create(line(id, i)));
    await c.flushed();
    expect((await c.stats()).pending).toBe(20);

    // Down while the form keeps saving: every save still succeeds.
    await redis.kill();
    for (const [i, id] of orders.slice(0, 10).entries()) await lines.save(lines.create(line(id, 100 + i)));
    await c.flushed();
    expect(Number((await db.dataSource.query('SELECT count(*) AS n FROM coalesce_outbox'))[0].n)).toBe(10);

    // Back (its append-only file kept the earlier marks); the drain relays the outbox first.
    await redis.start();
    await waitFor(async () => (await c.stats().catch(() => null))?.pending === 20, 'the client to reconnect');
    // Down again in the middle of a drain.
    const draining = c.drain({ concurrency: 2 }).catch((error: unknown) => error);
    await waitFor(() => recomputing >= 3, 'the drain to be under way');
    await redis.kill();
    await draining;
    await redis.start();
    // Leases of the interrupted drain expire and their parents come back.
    await waitFor(
      async () => {
        await c.drain({ concurrency: 4 }).catch(() => undefined);
        const s = await c.stats().catch(() => null);
        return s !== null && s.pending + s.inflight + s.delayed === 0 && s.outbox === 0;
      },
      'every parent to converge',
      30_000,
    );
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('strict delivery: a process killed right after COMMIT loses nothing', async () => {
    const c = shopCoalescer(db.dataSource);
    closing.push(() => dispose(c));
    const [orderId] = await seedOrders(db.dataSource, 1, 0);
    const child = spawn(process.execPath, [join(root, 'test', 'fixtures', 'kill-after-commit.cjs')], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl(),
        REDIS_URL: redisUrl(),
        TEST_SCHEMA: db.schema,
        TEST_NAMESPACE: c.namespace,
        ORDER_ID: String(orderId),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const signal = await new Promise((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    expect(signal, out).toBe('SIGKILL');
    // The line committed, no mark reached Redis, and the outbox row committed with the line.
    expect(await c.hottest()).toEqual([]);
    expect((await c.stats()).outbox).toBe(1);
    expect(await countMismatches(db.dataSource.manager)).toBe(1);
    const r = await c.drain();
    expect(r.recomputed).toBe(1);
    expect((await c.stats()).outbox).toBe(0);
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('strict delivery with Redis up: the outbox rows stay until their parents are recomputed', async () => {
    const c = shopCoalescer(db.dataSource, { delivery: 'outbox' });
    closing.push(() => dispose(c));
    await c.attach();
    const [orderId] = await seedOrders(db.dataSource, 1, 0);
    await db.dataSource.transaction(async (m) => {
      for (let i = 0; i < 5; i += 1) await m.save(m.create(OrderLine, line(orderId as number, i)));
    });
    await c.flushed();
    expect(await c.hottest()).toEqual([{ member: `Order:${orderId}`, heat: 5 }]);
    // Redis has the marks, but could still lose them: the row stays (recorded as sent)...
    expect((await c.stats()).outbox).toBe(1);
    expect((await c.drain()).recomputed).toBe(1);
    // ...until the recompute that covers it is acknowledged.
    expect((await c.stats()).outbox).toBe(0);
    c.detach();
  });

  it('kill -9 of a worker mid-recompute: after its leases expire every parent is recomputed, none twice at once', async () => {
    const recomputedHere = new RecomputeLog();
    const c = shopCoalescer(db.dataSource, { leaseMs: 1_000, log: recomputedHere });
    closing.push(() => dispose(c));
    const ids = await seedOrders(db.dataSource, 16, 2);
    await c.mark(Order, ids);
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl(),
      REDIS_URL: redisUrl(),
      TEST_SCHEMA: db.schema,
      TEST_NAMESPACE: c.namespace,
      LEASE_MS: '1000',
      SLOW_MS: '150',
      CONCURRENCY: '2',
    };
    const worker = (): { proc: ChildProcess; exited: Promise<unknown> } => {
      const proc = spawn(process.execPath, [join(root, 'test', 'fixtures', 'worker.cjs')], {
        env,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      closing.push(async () => proc.kill('SIGKILL'));
      return { proc, exited: new Promise((resolve) => proc.on('exit', (code, sig) => resolve(sig ?? code))) };
    };
    const doomed = worker();
    const survivor = worker();
    await waitFor(
      async () =>
        Number(
          (
            await db.dataSource.query('SELECT count(*) AS n FROM recompute_log WHERE ended_at IS NULL AND pid = $1', [
              doomed.proc.pid,
            ])
          )[0].n,
        ) > 0,
      'the doomed worker to be mid-recompute',
    );
    doomed.proc.kill('SIGKILL');
    expect(await doomed.exited).toBe('SIGKILL');
    expect(await survivor.exited).toBe(0);
    // What the dead worker held comes back once its leases expire.
    await waitFor(async () => {
      await c.drain({ concurrency: 4 });
      const s = await c.stats();
      return s.pending + s.inflight + s.delayed === 0;
    }, 'the leases of the killed worker to expire and be recomputed');
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
    const log = (await db.dataSource.query(
      `SELECT member, pid, extract(epoch from started_at) * 1000 AS s, extract(epoch from ended_at) * 1000 AS e FROM recompute_log`,
    )) as { member: string; pid: number; s: string; e: string | null }[];
    const killed = log.filter((r) => r.e === null);
    expect(killed.length).toBeGreaterThan(0);
    // Each parent the killed worker was recomputing was recomputed again, by the survivor or here.
    for (const k of killed) {
      const again = log.some((r) => r.member === k.member && r.e !== null && Number(r.s) > Number(k.s));
      expect(again || recomputedHere.of(Number(k.member.split(':')[1])) > 0, `${k.member} recomputed again`).toBe(true);
    }
    // No two completed recomputes of one parent overlap.
    const done = log.filter((r) => r.e !== null);
    for (const a of done) {
      for (const b of done) {
        if (a === b || a.member !== b.member) continue;
        const overlap = Number(a.s) < Number(b.e) && Number(b.s) < Number(a.e);
        expect(overlap, `${a.member} ran twice at once`).toBe(false);
      }
    }
  });

  it('PostgreSQL errors in a recompute: retried, then success; a permanent one reaches the dead set', async () => {
    let failures = 2;
    const flaky = shopCoalescer(db.dataSource, {
      retry: { attempts: 4, baseMs: 10, maxMs: 20 },
      before: async () => {
        if (failures > 0) {
          failures -= 1;
          await db.dataSource.query('SELECT 1 / 0');
        }
      },
    });
    closing.push(() => dispose(flaky));
    const [a] = await seedOrders(db.dataSource, 1, 3);
    await flaky.mark(Order, a as number);
    await waitFor(async () => {
      await flaky.drain();
      return (await flaky.stats()).delayed === 0 && (await flaky.stats()).pending === 0;
    }, 'the flaky recompute to succeed');
    expect(failures).toBe(0);
    expect((await flaky.stats()).dead).toBe(0);
    expect(await countMismatches(db.dataSource.manager)).toBe(0);

    const broken = shopCoalescer(db.dataSource, {
      retry: { attempts: 2, baseMs: 10, maxMs: 20 },
      before: async () => void (await db.dataSource.query('SELECT * FROM no_such_table')),
    });
    closing.push(() => dispose(broken));
    await broken.mark(Order, a as number);
    await waitFor(async () => {
      await broken.drain();
      return (await broken.stats()).dead === 1;
    }, 'the broken parent to be dead-lettered');
    const [dead] = await broken.dead.list();
    expect(dead).toMatchObject({ member: `Order:${a}`, attempts: 2 });
    expect(dead?.error).toMatch(/no_such_table/);
    expect(dead?.at).toBeGreaterThan(0);
  });

  it('warns at attach when Redis may lose marks (no persistence on the test server)', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redisUrl(),
      namespace: `warn-${suffix()}`,
      logger: pino({ level: 'warn' }, sink),
    });
    closing.push(() => c.close());
    c.parent<number>(Order, { recompute: (id, { manager }) => recomputeOrders(manager, [id]) });
    await c.attach();
    const config = new Redis(redisUrl());
    const [, aof] = (await config.config('GET', 'appendonly')) as string[];
    const [, save] = (await config.config('GET', 'save')) as string[];
    config.disconnect();
    const persistent = aof === 'yes' || (save ?? '') !== '';
    expect(lines.some((l) => l.includes('no persistence'))).toBe(!persistent);
    c.detach();
  });

  it("says Redis' risky settings once a day per namespace, and once in each process that runs a runner", async () => {
    const redis = new OwnRedis({ persist: false });
    await redis.start();
    closing.push(() => redis.destroy());
    const namespace = `warn-${suffix()}`;
    const said: string[][] = [];
    const make = (): Coalescer => {
      const lines: string[] = [];
      said.push(lines);
      const sink = new Writable({
        write(chunk: Buffer, _enc, done) {
          if (chunk.toString().includes('Redis has no persistence')) lines.push(chunk.toString());
          done();
        },
      });
      const c = new Coalescer({ dataSource: db.dataSource, redis: redis.url, namespace, logger: pino({ level: 'warn' }, sink) });
      closing.push(() => c.close());
      c.parent<number>(Order, { recompute: (id, { manager }) => recomputeOrders(manager, [id]) });
      return c;
    };
    // Three processes attach in a row (three CLI commands, say): the first one says it.
    for (let i = 0; i < 3; i += 1) {
      const c = make();
      await c.attach();
      c.detach();
    }
    expect(said.map((lines) => lines.length)).toEqual([1, 0, 0]);
    const worker = make();
    await worker.attach();
    const runner = worker.runner();
    await waitFor(() => (said[3]?.length ?? 0) > 0, "the runner's process to say it");
    worker.runner();
    await worker.attach();
    await worker.drain();
    expect(said.map((lines) => lines.length)).toEqual([1, 0, 0, 1]);
    await runner.stop();
    worker.detach();
    // A day later (the key expired), an attach says it again.
    const raw = new Redis(redis.url);
    const ttl = await raw.ttl(worker.keys.settingsWarned);
    expect(ttl).toBeGreaterThan(86_400 - 600);
    expect(ttl).toBeLessThanOrEqual(86_400);
    await raw.del(worker.keys.settingsWarned);
    raw.disconnect();
    const later = make();
    await later.attach();
    later.detach();
    expect(said[4]).toHaveLength(1);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
