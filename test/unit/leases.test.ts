import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Redis } from 'ioredis';
import { LeaseKeeper, type Claim } from '../../src/drain/leases';
import { LeaseLostError } from '../../src/errors';
import { Claims } from '../../src/redis/claims';
import { Marks } from '../../src/redis/marks';
import { Outcomes } from '../../src/redis/outcomes';
import { keysFor } from '../../src/redis/keys';
import { defineScripts, type Conn } from '../../src/redis/scripts';
import { redisUrl, suffix } from '../support';

// The lease keeper against a real Redis, with its clocks in the test's hands: `t` is its
// monotonic time, `server` the namespace's.

describe('LeaseKeeper', () => {
  let client: Redis;
  let conn: Conn;
  beforeAll(() => {
    client = new Redis(redisUrl());
    defineScripts(client);
  });
  afterAll(() => client.disconnect());

  const LEASE = 1_000;
  let t = 0;
  let server = 1_000_000;

  async function claimed(members: string[]): Promise<Claim[]> {
    conn = { client, keys: keysFor(`leases-${suffix()}`) };
    await new Marks(conn).mark(
      members.map((member) => ({ member, increment: 1, base: 1e12 })),
      server,
    );
    const { token, won } = await new Claims(conn).claim(
      members.map((m) => ({ key: m, score: '' })),
      server + LEASE,
    );
    return won.map((w) => ({
      key: members[w.index] as string,
      member: members[w.index] as string,
      score: w.score,
      since: w.since,
      attempts: 0,
      token,
    }));
  }

  function keeper(): LeaseKeeper {
    t = 0;
    return new LeaseKeeper({
      claims: new Claims(conn),
      clock: { now: () => server },
      leaseMs: LEASE,
      logger: pino({ level: 'silent' }),
      monotonic: () => t,
    });
  }

  it('holds a lease with a safety margin, renews it in Redis, and loses it when renewal cannot come in time', async () => {
    const [claim] = (await claimed(['Doc:1'])) as [Claim];
    const k = keeper();
    const lost: LeaseLostError[] = [];
    k.hold([claim], 0);
    k.watch(claim, (reason) => lost.push(reason));
    expect(k.valid(claim)).toBe(true);
    t = 800; // 200 ms left: under the quarter-lease margin.
    expect(k.valid(claim)).toBe(false);
    t = 400;
    server += 400;
    await k.renew();
    expect(Number(await client.zscore(conn.keys.leases, 'Doc:1'))).toBe(server + LEASE);
    t = 1_000; // valid until 400 + 1000 now
    expect(k.valid(claim)).toBe(true);
    t = 1_200;
    k.tick();
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBeInstanceOf(LeaseLostError);
    expect(k.lost(claim)).toBe(lost[0]);
    expect(k.size).toBe(0);
    k.stop();
  });

  it('a renewal that finds the claim passed to another worker aborts its recompute, unless its end was on its way', async () => {
    const [a, b] = (await claimed(['Doc:1', 'Doc:2'])) as [Claim, Claim];
    const k = keeper();
    const lost: string[] = [];
    k.hold([a, b], 0);
    k.watch(a, () => lost.push('a'));
    k.watch(b, () => lost.push('b'));
    // Both given back (a crash of this worker as another sees it), then claimed by another worker.
    await new Outcomes(conn, 'ch').release(
      [a, b].map((c) => ({ key: c.key, token: c.token })),
      server,
    );
    await new Claims(conn).claim(
      [a, b].map((c) => ({ key: c.key, score: '' })),
      server + LEASE,
    );
    k.end(b); // b's acknowledgement crossed the renewal: that is no lost lease.
    await k.renew();
    expect(lost).toEqual(['a']);
    expect(k.lost(a)?.message).toMatch(/passed to another worker/);
    expect(k.lost(b)).toBeUndefined();
    k.stop();
  });
});
