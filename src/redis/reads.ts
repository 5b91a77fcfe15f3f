import type { Counts, MemberState, PendingByType } from './records';
import { parseDead } from './dead';
import { callScript, type Conn } from './scripts';
import { chunks, MAX_BATCH } from '../util/chunks';

/** What a parent's marks and acknowledged recomputes say of it: see {@link Reads.generations}. */
export interface Generations {
  /** Generation of its last mark still waiting for a recompute (undefined: none waits). */
  readonly waiting: number | undefined;
  /** Generation the last acknowledged recompute covered. */
  readonly covered: number | undefined;
  readonly dead: boolean;
}

/**
 * Reads of a namespace that change nothing: sizes, the hottest parents, one parent's state, mark
 * generations, which parents are busy, the server's clock. Stats, fresh(), verify, the outbox's
 * pruning and the dashboard read through it.
 */
export class Reads {
  constructor(private readonly conn: Conn) {}

  /** Sizes of every set, in one round trip. */
  async counts(now: number): Promise<Counts> {
    const k = this.conn.keys;
    const replies = await this.conn.client
      .multi()
      .zcard(k.pending)
      .zcard(k.leases)
      .zcard(k.delayed)
      .zcard(k.dead)
      .zcount(k.leases, '-inf', now)
      .zrange(k.since, 0, 0, 'WITHSCORES')
      .zcard(k.settling)
      .zcount(k.due, '-inf', now)
      .exec();
    const values = (replies ?? []).map(([err, value]) => {
      if (err) throw err;
      return value;
    });
    const oldest = values[5] as string[] | undefined;
    return {
      pending: Number(values[0]),
      inflight: Number(values[1]),
      delayed: Number(values[2]),
      dead: Number(values[3]),
      expired: Number(values[4]),
      settling: Number(values[6]),
      overdue: Number(values[7]),
      oldestSince: oldest && oldest[1] !== undefined ? Number(oldest[1]) : undefined,
    };
  }
  /** The `n` hottest pending members with their scores. */
  async top(n: number): Promise<{ member: string; score: number }[]> {
    const flat = await this.conn.client.zrevrange(this.conn.keys.pending, 0, n - 1, 'WITHSCORES');
    const out: { member: string; score: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
    return out;
  }
  /** Recent waits (first mark to recompute start, ms), newest first; at most 1000 are kept. */
  async recentWaits(): Promise<number[]> {
    return (await this.conn.client.lrange(this.conn.keys.waits, 0, -1)).map(Number);
  }
  /**
   * For each member: the generation of its last mark still waiting for a recompute (undefined:
   * none waits), the one the last acknowledged recompute covered, and whether it is dead. One
   * round trip per {@link MAX_BATCH} members.
   */
  async generations(members: readonly string[]): Promise<Generations[]> {
    const k = this.conn.keys;
    const out: Generations[] = [];
    const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
    for (const batch of chunks(members, MAX_BATCH)) {
      const replies =
        (await this.conn.client
          .multi()
          .hmget(k.generations, ...batch)
          .hmget(k.ackedGens, ...batch)
          .zmscore(k.dead, ...batch)
          .exec()) ?? [];
      const [waiting, covered, dead] = replies.map(([err, value]) => {
        if (err) throw err;
        return value as (string | null)[];
      });
      batch.forEach((_m, i) => {
        out.push({ waiting: num(waiting?.[i]), covered: num(covered?.[i]), dead: num(dead?.[i]) !== undefined });
      });
    }
    return out;
  }
  /** Everything Redis holds about one parent, in one round trip. */
  async memberState(member: string): Promise<MemberState> {
    const k = this.conn.keys;
    const replies =
      (await this.conn.client
        .multi()
        .zscore(k.pending, member)
        .zscore(k.settling, member)
        .hget(k.settleHeat, member)
        .zscore(k.since, member)
        .zscore(k.leases, member)
        .zscore(k.delayed, member)
        .hget(k.attempts, member)
        .hget(k.dirty, member)
        .hget(k.deadInfo, member)
        .zscore(k.dead, member)
        .exec()) ?? [];
    const v = replies.map(([err, value]) => {
      if (err) throw err;
      return value as string | null;
    });
    const num = (i: number): number | undefined => (v[i] === null || v[i] === undefined ? undefined : Number(v[i]));
    return {
      pendingScore: num(0),
      settlingUntil: num(1),
      settlingScore: num(2),
      since: num(3),
      leaseDeadline: num(4),
      retryAt: num(5),
      attempts: num(6) ?? 0,
      markedDuring: num(7) ?? 0,
      dead: num(9) === undefined ? undefined : parseDead(member, v[8] ?? null),
    };
  }
  /**
   * Which of `members` still wait for a recompute (pending, settling, held or dead), and the
   * fence counter read after them; 'lost' when the namespace's epoch is not `epoch` (Redis lost
   * its data: an absent member proves nothing).
   */
  async busy(members: readonly string[], epoch: string): Promise<{ busy: boolean[]; fence: number } | 'lost'> {
    const out: boolean[] = [];
    let fence = 0;
    for (const batch of chunks(members, MAX_BATCH)) {
      const reply = await callScript<(number | string)[] | number>(this.conn, 'busy', [epoch, ...batch]);
      if (!Array.isArray(reply)) return 'lost';
      fence = Math.max(fence, Number(reply[0]));
      for (const flag of reply.slice(1)) out.push(Number(flag) === 1);
    }
    return { busy: out, fence };
  }
  /** Redis' own clock, in ms. */
  async time(): Promise<number> {
    const [s, us] = await this.conn.client.time();
    return Number(s) * 1000 + Number(us) / 1000;
  }
  /**
   * Pending members per type (the part of the member before its first `:`), from a ZSCAN of at
   * most about `maxScanned` members, so a huge pending set costs a bounded read. `exact` is
   * true when the scan covered the whole set; otherwise `byType` counts the members scanned
   * (ZSCAN's order is the hash table's, not the scores', so it is a fair sample).
   */
  async pendingByType(maxScanned: number): Promise<PendingByType> {
    const byType: Record<string, number> = {};
    let scanned = 0;
    let cursor = '0';
    do {
      const [next, flat] = await this.conn.client.zscan(this.conn.keys.pending, cursor, 'COUNT', Math.min(1000, maxScanned));
      // ZSCAN replies member, score, member, score...
      for (let i = 0; i < flat.length; i += 2) {
        const member = flat[i] as string;
        const colon = member.indexOf(':');
        const type = colon > 0 ? member.slice(0, colon) : member;
        byType[type] = (byType[type] ?? 0) + 1;
        scanned += 1;
      }
      cursor = next;
    } while (cursor !== '0' && scanned < maxScanned);
    const total = await this.conn.client.zcard(this.conn.keys.pending);
    return { byType, scanned, total, exact: cursor === '0' };
  }
  /** Pending members whose score lies in each `[min, max)` range (max may be Infinity), in one round trip. */
  async pendingInRanges(ranges: readonly (readonly [number, number])[]): Promise<number[]> {
    const multi = this.conn.client.multi();
    for (const [min, max] of ranges) multi.zcount(this.conn.keys.pending, min, max === Infinity ? '+inf' : `(${max}`);
    return ((await multi.exec()) ?? []).map(([err, n]) => {
      if (err) throw err;
      return Number(n);
    });
  }
}
