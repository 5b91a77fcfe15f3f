import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Redis } from 'ioredis';
import { AckBuffer } from '../../src/drain/acks';
import { Claimer } from '../../src/drain/claimer';
import { LeaseKeeper } from '../../src/drain/leases';
import { emptyResult } from '../../src/drain/types';
import { Claims } from '../../src/redis/claims';
import { Marks } from '../../src/redis/marks';
import { Outcomes } from '../../src/redis/outcomes';
import { keysFor } from '../../src/redis/keys';
import { defineScripts, type Conn } from '../../src/redis/scripts';
import { classify } from '../../src/registry/members';
import type { ParentType } from '../../src/registry/model';
import type { Claimed } from '../../src/drain/claimer';
import { redisUrl, suffix } from '../support';

// The claimer and the ack buffer against a real Redis, with time and chance in the test's hands.

const silent = pino({ level: 'silent' });
const LEASE = 10_000;

describe('Claimer and AckBuffer', () => {
  let client: Redis;
  beforeAll(() => {
    client = new Redis(redisUrl());
    defineScripts(client);
  });
  afterAll(() => client.disconnect());

  const server = { now: () => 5_000_000 };
  let t = 0;
  const conn = (): Conn => ({ client, keys: keysFor(`parts-${suffix()}`) });
  const keeperOf = (c: Conn): LeaseKeeper =>
    new LeaseKeeper({ claims: new Claims(c), clock: server, leaseMs: LEASE, logger: silent, monotonic: () => t });
  // A parent type as the claimer needs it: a name and how its ids are spelled.
  const types = new Map([['Doc', { name: 'Doc', idKind: 'int' } as unknown as ParentType]]);

  it('claims the hottest first, takes their leases, leaves the types only other processes register, and says empty at the end', async () => {
    const c = conn();
    await new Marks(c).mark(
      [
        { member: 'Doc:1', increment: 1, base: 1e12 },
        { member: 'Doc:2', increment: 5, base: 1e12 },
        { member: 'Other:1', increment: 9, base: 1e12 },
      ],
      server.now(),
    );
    const keeper = keeperOf(c);
    t = 100;
    const claimer = new Claimer({
      claims: new Claims(c),
      clock: server,
      keeper,
      leaseMs: LEASE,
      classify: (key) => classify(key, types, new Set(['Other'])),
      spread: true,
      random: () => 0,
    });
    const first = await claimer.next(1);
    expect(first !== 'empty' && first.map((x) => x.claim.member)).toEqual([]);
    // Only another process's parent at the top: the claimer looks further down.
    const second = await claimer.next(2);
    expect(second !== 'empty' && second.map((x) => x.claim.member)).toEqual(['Doc:2', 'Doc:1']);
    expect(keeper.size).toBe(2);
    expect(Number(await client.zscore(c.keys.leases, 'Doc:2'))).toBe(server.now() + LEASE);
    // The lease counts from when the claim was sent (t = 100).
    t = 100 + LEASE - LEASE / 4 - 1;
    expect(keeper.valid((second as Claimed[])[0]!.claim)).toBe(true);
    t = 100 + LEASE - LEASE / 4;
    expect(keeper.valid((second as Claimed[])[0]!.claim)).toBe(false);
    expect(await claimer.next(2)).toEqual([]);
    expect(await claimer.next(2)).toBe('empty');
    keeper.stop();
  });

  it('a race lost at the top moves the claimer down by whole windows, as chance says', async () => {
    const c = conn();
    await new Marks(c).mark(
      Array.from({ length: 6 }, (_, i) => ({ member: `Doc:${i + 1}`, increment: 10 - i, base: 1e12 })),
      server.now(),
    );
    const keeper = keeperOf(c);
    const real = new Claims(c);
    const other = new Claims(c);
    // Another worker takes the first member of each window between the read and the claim.
    const racing: Pick<Claims, 'readWindow' | 'claim'> = {
      readWindow: (now, size, offset) => real.readWindow(now, size, offset),
      claim: async (candidates, deadline, sample) => {
        await other.claim(candidates.slice(0, 1), deadline);
        return real.claim(candidates, deadline, sample);
      },
    };
    const claimer = new Claimer({
      claims: racing,
      clock: server,
      keeper,
      leaseMs: LEASE,
      classify: (key) => classify(key, types, new Set()),
      spread: true,
      random: () => 0.99,
    });
    const got = await claimer.next(2);
    expect(got !== 'empty' && got.map((x) => x.claim.member)).toEqual(['Doc:2']);
    expect(claimer.lostRaces).toBe(1);
    // random 0.99: three windows of 2 further down, past the end of Doc:3..Doc:6: nothing read
    // there, and the next read starts from the top again.
    expect(await claimer.next(2)).toEqual([]);
    const top = await claimer.next(2);
    expect(top !== 'empty' && top.map((x) => x.claim.member)).toEqual(['Doc:4']);
    keeper.stop();
  });

  it('acknowledges in batches, re-arms a parent marked during its recompute, and counts a superseded ack', async () => {
    const c = conn();
    const marks = new Marks(c);
    await marks.mark(
      ['Doc:1', 'Doc:2'].map((member) => ({ member, increment: 1, base: 1e12 })),
      server.now(),
    );
    const keeper = keeperOf(c);
    const claimed = await new Claimer({
      claims: new Claims(c),
      clock: server,
      keeper,
      leaseMs: LEASE,
      classify: (key) => classify(key, types, new Set()),
      spread: false,
    }).next(2);
    if (claimed === 'empty') throw new Error('nothing claimed');
    // Doc:1 changes while it is recomputed.
    await marks.mark([{ member: 'Doc:1', increment: 1, base: 1e12 }], server.now());
    const totals = emptyResult();
    const acks = new AckBuffer({ outcomes: new Outcomes(c, 'ch'), keeper, clock: server, logger: silent, batch: 2, totals });
    for (const { claim } of claimed) acks.add({ key: claim.key, token: claim.token, base: 1e12 }, claim);
    // A batch of 2 is full: sent at once, not after the delay.
    expect(await acks.settle()).toBe(1);
    expect(keeper.size).toBe(0);
    expect(await client.zrange(c.keys.pending, 0, -1)).toEqual(['Doc:1']);
    // An ack with a token that is not the claim's: superseded, and one more mark.
    const stale = claimed.find((x) => x.claim.member === 'Doc:2')!.claim;
    acks.add({ key: stale.key, token: '999999', base: 1e12 }, stale);
    await acks.settle();
    expect(totals).toMatchObject({ rearmed: 1, superseded: 1 });
    expect((await client.zrange(c.keys.pending, 0, -1)).sort()).toEqual(['Doc:1', 'Doc:2']);
  });
});
