import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import {
  countMismatches,
  createTestDb,
  databaseUrl,
  Order,
  OrderLine,
  redisUrl,
  seedOrders,
  shopCoalescer,
  waitFor,
  type TestDb,
} from '../support';

const root = join(__dirname, '..', '..');
const SOAK_MS = 15_000;
const LEASE_MS = 1_000;

/** A deterministic pseudo-random source, so a failing run can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('soak: writers, three drainer processes, kill -9 at random', () => {
  let db: TestDb;
  const procs = new Set<ChildProcess>();
  beforeAll(async () => {
    db = await createTestDb('soak', { poolSize: 12 });
    await db.dataSource.query(
      `CREATE TABLE recompute_log (id serial PRIMARY KEY, member text NOT NULL, pid int NOT NULL,
                                   started_at timestamptz NOT NULL, ended_at timestamptz)`,
    );
  });
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await db.destroy();
  });

  it('every order ends equal to its lines, no recompute of one order ran alongside another, no key is left', async () => {
    const seed = Number(process.env.SOAK_SEED ?? Date.now() % 100_000);
    const random = rng(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    // The writers' process captures; it never drains until the end.
    const c = shopCoalescer(db.dataSource, { leaseMs: LEASE_MS });
    await c.attach();
    const orders = await seedOrders(db.dataSource, 40, 3);
    await c.mark(Order, orders);
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl(),
      REDIS_URL: redisUrl(),
      TEST_SCHEMA: db.schema,
      TEST_NAMESPACE: c.namespace,
      LEASE_MS: String(LEASE_MS),
    };
    let kills = 0;
    const spawnWorker = (): ChildProcess => {
      const proc = spawn(process.execPath, [join(root, 'test', 'fixtures', 'soak-worker.cjs')], {
        env,
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      procs.add(proc);
      proc.on('exit', () => procs.delete(proc));
      return proc;
    };
    for (let i = 0; i < 3; i += 1) spawnWorker();

    const lines = db.dataSource.getRepository(OrderLine);
    const until = Date.now() + SOAK_MS;
    let nextKill = Date.now() + 1_500;
    let writes = 0;
    while (Date.now() < until) {
      const live = (await lines.find({ select: { id: true, orderId: true } })) as OrderLine[];
      const op = random();
      if (op < 0.35 || live.length < 10) {
        await db.dataSource.transaction(async (m) => {
          const orderId = pick(orders);
          for (let k = 0; k < 1 + Math.floor(random() * 4); k += 1) {
            await m.save(m.create(OrderLine, { orderId, sku: `s${k}`, qty: 1 + Math.floor(random() * 9), unitPrice: '1.25' }));
          }
        });
      } else if (op < 0.65) {
        await lines.save({ id: pick(live).id, qty: 1 + Math.floor(random() * 20) });
      } else if (op < 0.85) {
        const line = pick(live);
        await lines.save({ id: line.id, orderId: pick(orders) });
      } else {
        const line = await lines.findOneBy({ id: pick(live).id });
        if (line) await lines.remove(line);
      }
      writes += 1;
      if (Date.now() >= nextKill && procs.size > 0) {
        pick([...procs]).kill('SIGKILL');
        kills += 1;
        spawnWorker();
        nextKill = Date.now() + 1_000 + random() * 2_000;
      }
    }
    await c.flushed();
    // Let the drainers finish what is pending, then stop them all (a last crash included).
    await waitFor(
      async () => {
        const s = await c.stats();
        return s.pending + s.delayed + s.settling === 0;
      },
      `the drainers to catch up (seed ${seed})`,
      30_000,
    );
    for (const p of procs) p.kill('SIGKILL');
    await waitFor(() => procs.size === 0, 'the drainers to exit');
    // Whatever the last kills held comes back after its lease.
    await waitFor(
      async () => {
        await c.drain({ concurrency: 4 });
        const s = await c.stats();
        return s.pending + s.inflight + s.delayed + s.settling === 0;
      },
      `every lease to be given back and recomputed (seed ${seed})`,
      30_000,
    );

    expect(writes).toBeGreaterThan(100);
    expect(kills).toBeGreaterThan(2);
    expect(await countMismatches(db.dataSource.manager), `seed ${seed}`).toBe(0);
    const log = (await db.dataSource.query(
      `SELECT a.member FROM recompute_log a JOIN recompute_log b
          ON a.member = b.member AND a.id < b.id
         AND a.ended_at IS NOT NULL AND b.ended_at IS NOT NULL
         AND a.started_at < b.ended_at AND b.started_at < a.ended_at`,
    )) as { member: string }[];
    expect(
      log.map((r) => r.member),
      `overlapping recomputes (seed ${seed})`,
    ).toEqual([]);
    // Nothing is left in any set of the namespace: only its bookkeeping (epoch, fence, policies, waits).
    const raw = new Redis(redisUrl());
    const k = c.keys;
    const sizes = await Promise.all([
      raw.zcard(k.pending),
      raw.zcard(k.leases),
      raw.hlen(k.claims),
      raw.hlen(k.dirty),
      raw.zcard(k.delayed),
      raw.zcard(k.settling),
      raw.zcard(k.since),
      raw.zcard(k.due),
      raw.zcard(k.dead),
      raw.hlen(k.attempts),
      raw.hlen(k.generations),
    ]);
    raw.disconnect();
    expect(sizes, `seed ${seed}`).toEqual(sizes.map(() => 0));
    c.detach();
    await c.reset();
    await c.close();
  });
});
