import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis, Result } from 'ioredis';
import type { Keys } from './keys';

/** One parent to mark: its member, how much heat to add, and the base of its score (priority). */
export interface MarkEntry {
  readonly member: string;
  readonly increment: number;
  readonly base: number;
}

/** A member read at the top of pending, with its score as read. */
export interface WindowEntry {
  readonly member: string;
  readonly score: string;
}

/** A parent won by a claim. */
export interface Claimed {
  readonly member: string;
  /** Score at claim time (priority base + heat). */
  readonly score: number;
  /** Ms of the first mark not yet covered by a recompute, for the sampled claims. */
  readonly since: number | undefined;
  /** Failed attempts before this one. */
  readonly attempts: number;
  /** Token that proves ownership when acknowledging. */
  readonly token: string;
  /** Lease deadline (ms). */
  readonly deadline: number;
}

/** A recomputed parent to acknowledge. */
export interface AckEntry {
  readonly member: string;
  readonly token: string;
  readonly base: number;
  /** Ms from its first mark to the start of its recompute, recorded for lag figures. */
  readonly waitMs?: number | undefined;
}

/** How the scripts treat members of one parent type. */
export interface TypePolicy {
  /** Priority base of the score. */
  readonly base: number;
  /** Quiet period after the last mark before the parent may be claimed; 0 for none. */
  readonly settleMs: number;
  /** Longest wait from the first mark to the claim, if capped. */
  readonly maxWaitMs: number | undefined;
}

/** A failed recompute: retry at `retryAt` (ms), or dead-letter when `retryAt` is undefined. */
export interface FailEntry {
  readonly member: string;
  readonly token: string;
  readonly retryAt: number | undefined;
  readonly error: string;
}

/** A dead-lettered parent as stored. */
export interface DeadEntry {
  readonly member: string;
  readonly error: string;
  readonly attempts: number;
  readonly score: number;
  /** Ms when it was dead-lettered. */
  readonly at: number;
}

/** Sizes of the sets of one namespace. */
export interface Counts {
  readonly pending: number;
  readonly inflight: number;
  readonly delayed: number;
  readonly dead: number;
  /** Leases whose deadline has passed and that no drain has given back yet. */
  readonly expired: number;
  /** Parents in their quiet period (settleMs), not yet claimable. */
  readonly settling: number;
  /** Parents past their maxWaitMs and not yet claimed. */
  readonly overdue: number;
  /** Ms of the oldest first mark among parents waiting for a recompute, if any. */
  readonly oldestSince: number | undefined;
}

interface ScriptDef {
  readonly name: string;
  readonly file: string;
  readonly keys: number;
}

const SCRIPTS = {
  mark: { name: 'coalesceMarkParents', file: 'markParents-11.lua', keys: 11 },
  claim: { name: 'coalesceClaimParents', file: 'claimParents-6.lua', keys: 6 },
  ack: { name: 'coalesceAckParents', file: 'ackParents-12.lua', keys: 12 },
  requeue: { name: 'coalesceRequeueHeld', file: 'requeueHeld-7.lua', keys: 7 },
  fail: { name: 'coalesceFailParents', file: 'failParents-11.lua', keys: 11 },
  revive: { name: 'coalesceReviveDead', file: 'reviveDead-4.lua', keys: 4 },
  promoteSettled: { name: 'coalescePromoteSettled', file: 'promoteSettled-3.lua', keys: 3 },
} as const satisfies Record<string, ScriptDef>;

type Arg = string | number;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    coalesceMarkParents(...args: Arg[]): Result<number, Context>;
    coalesceClaimParents(...args: Arg[]): Result<string[], Context>;
    coalesceAckParents(...args: Arg[]): Result<[number, number, number], Context>;
    coalesceRequeueHeld(...args: Arg[]): Result<number, Context>;
    coalesceFailParents(...args: Arg[]): Result<[number, number, number], Context>;
    coalesceReviveDead(...args: Arg[]): Result<number, Context>;
    coalescePromoteSettled(...args: Arg[]): Result<number, Context>;
  }
}

const sources = new Map<string, string>();
function source(file: string): string {
  let lua = sources.get(file);
  if (lua === undefined) {
    lua = readFileSync(join(__dirname, 'scripts', file), 'utf8');
    sources.set(file, lua);
  }
  return lua;
}

const defined = new WeakSet<Redis>();
/** Defines every script on `client` once (EVALSHA with ioredis' NOSCRIPT fallback). */
export function defineScripts(client: Redis): void {
  if (defined.has(client)) return;
  for (const def of Object.values(SCRIPTS)) {
    client.defineCommand(def.name, { numberOfKeys: def.keys, lua: source(def.file) });
  }
  defined.add(client);
}

/** Most arguments sent in one script call; larger inputs are split so no call is unbounded. */
export const MAX_BATCH = 500;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The Redis side of one namespace: every command and script the coalescer sends. Knows
 * members and scores, nothing of TypeORM.
 */
export class Store {
  constructor(
    private readonly client: Redis,
    readonly keys: Keys,
  ) {
    defineScripts(client);
  }

  /** Adds heat to parents in one round trip (one script call per {@link MAX_BATCH} parents). */
  async mark(entries: readonly MarkEntry[], now: number): Promise<number> {
    const k = this.keys;
    const keys = [
      k.pending,
      k.since,
      k.claims,
      k.dirty,
      k.dirtyAt,
      k.dead,
      k.deadInfo,
      k.due,
      k.settling,
      k.settleHeat,
      k.policy,
    ];
    const batches = chunks(entries, MAX_BATCH);
    if (batches.length === 1) {
      return this.client.coalesceMarkParents(...keys, now, ...flatMark(batches[0] ?? []));
    }
    const pipeline = this.client.pipeline();
    for (const batch of batches) pipeline.coalesceMarkParents(...keys, now, ...flatMark(batch));
    let marked = 0;
    for (const [err, n] of (await pipeline.exec()) ?? []) {
      if (err) throw err;
      marked += Number(n);
    }
    return marked;
  }

  /** The `count` hottest pending members starting at rank `offset` (ZREVRANGE). */
  window(offset: number, count: number): Promise<string[]> {
    return this.client.zrevrange(this.keys.pending, offset, offset + count - 1);
  }

  /** Like {@link window}, with each member's score as read (so the claim need not read it again). */
  async windowWithScores(offset: number, count: number): Promise<WindowEntry[]> {
    const flat = await this.client.zrevrange(this.keys.pending, offset, offset + count - 1, 'WITHSCORES');
    const out: WindowEntry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i] as string, score: flat[i + 1] as string });
    return out;
  }

  /** Up to `count` parents past their maxWaitMs, most overdue first. */
  overdue(now: number, count: number): Promise<string[]> {
    return this.client.zrangebyscore(this.keys.due, '-inf', now, 'LIMIT', 0, count);
  }

  /** Moves parents whose quiet period is over to pending; at most `limit`. */
  promoteSettled(now: number, limit: number): Promise<number> {
    const k = this.keys;
    return this.client.coalescePromoteSettled(k.settling, k.settleHeat, k.pending, now, limit);
  }

  /** Publishes how each parent type is marked (priority, settleMs, maxWaitMs) for the scripts. */
  async writePolicies(policies: ReadonlyMap<string, TypePolicy>): Promise<void> {
    if (policies.size === 0) return;
    const fields: string[] = [];
    for (const [type, p] of policies) fields.push(type, `${p.base}|${p.settleMs}|${p.maxWaitMs ?? ''}`);
    await this.client.hset(this.keys.policy, ...fields);
  }

  /** Recent waits (first mark to recompute start, ms), newest first; at most 1000 are kept. */
  async recentWaits(): Promise<number[]> {
    return (await this.client.lrange(this.keys.waits, 0, -1)).map(Number);
  }

  /**
   * Claims `members` (checked ZREM + lease each); returns the ones this call won. Give the
   * scores read with the window when there are any; the first `sample` won report their
   * first-mark time.
   */
  async claim(
    members: readonly (string | WindowEntry)[],
    leaseDeadline: number,
    token: string,
    sample = members.length,
  ): Promise<Claimed[]> {
    if (members.length === 0) return [];
    const k = this.keys;
    const args: Arg[] = [leaseDeadline, token, sample];
    for (const m of members) {
      if (typeof m === 'string') args.push(m, '');
      else args.push(m.member, m.score);
    }
    const flat = await this.client.coalesceClaimParents(k.pending, k.leases, k.claims, k.attempts, k.due, k.since, ...args);
    const out: Claimed[] = [];
    for (let i = 0; i + 3 < flat.length; i += 4) {
      const since = flat[i + 2];
      out.push({
        member: flat[i] as string,
        score: Number(flat[i + 1]),
        since: since ? Number(since) : undefined,
        attempts: Number(flat[i + 3]),
        token,
        deadline: leaseDeadline,
      });
    }
    return out;
  }

  /** Ends the leases of recomputed parents; re-arms those marked meanwhile. */
  async ack(entries: readonly AckEntry[], now: number): Promise<{ acked: number; rearmed: number; lost: number }> {
    const k = this.keys;
    const total = { acked: 0, rearmed: 0, lost: 0 };
    for (const batch of chunks(entries, MAX_BATCH)) {
      const args: Arg[] = [now, batch.length];
      for (const e of batch) args.push(e.member, e.token, e.base);
      for (const e of batch) if (e.waitMs !== undefined) args.push(Math.max(0, Math.round(e.waitMs)));
      const [acked, rearmed, lost] = await this.client.coalesceAckParents(
        k.leases,
        k.claims,
        k.pending,
        k.since,
        k.dirty,
        k.dirtyAt,
        k.attempts,
        k.due,
        k.settling,
        k.settleHeat,
        k.policy,
        k.waits,
        ...args,
      );
      total.acked += acked;
      total.rearmed += rearmed;
      total.lost += lost;
    }
    return total;
  }

  /** Records failed recomputes: delayed retry or dead letter. */
  async fail(entries: readonly FailEntry[], now: number): Promise<{ retried: number; dead: number; lost: number }> {
    const k = this.keys;
    const total = { retried: 0, dead: 0, lost: 0 };
    for (const batch of chunks(entries, MAX_BATCH)) {
      const args = batch.flatMap((e) => [e.member, e.token, e.retryAt ?? -1, e.error]);
      const [retried, dead, lost] = await this.client.coalesceFailParents(
        k.leases,
        k.claims,
        k.delayed,
        k.attempts,
        k.dead,
        k.deadInfo,
        k.pending,
        k.since,
        k.dirty,
        k.dirtyAt,
        k.due,
        now,
        ...args,
      );
      total.retried += retried;
      total.dead += dead;
      total.lost += lost;
    }
    return total;
  }

  /** Gives leases past their deadline back to pending with their heat; at most `limit`. */
  reapExpired(now: number, limit: number): Promise<number> {
    return this.requeue(this.keys.leases, now, limit, []);
  }

  /** Moves retries whose backoff is over back to pending; at most `limit`. */
  promoteDue(now: number, limit: number): Promise<number> {
    return this.requeue(this.keys.delayed, now, limit, []);
  }

  /** Gives back to pending the leases a worker still holds (on shutdown), checked by token. */
  async release(claims: readonly Pick<Claimed, 'member' | 'token'>[], now: number): Promise<number> {
    let released = 0;
    for (const batch of chunks(claims, MAX_BATCH)) {
      released += await this.requeue(
        this.keys.leases,
        now,
        batch.length,
        batch.flatMap((c) => [c.member, c.token]),
      );
    }
    return released;
  }

  private requeue(from: string, now: number, limit: number, pairs: Arg[]): Promise<number> {
    const k = this.keys;
    return this.client.coalesceRequeueHeld(from, k.claims, k.pending, k.since, k.dirty, k.dirtyAt, k.due, now, limit, ...pairs);
  }

  /** Dead-lettered parents, oldest first. */
  async listDead(offset: number, count: number): Promise<DeadEntry[]> {
    const members = await this.client.zrange(this.keys.dead, offset, offset + count - 1);
    if (members.length === 0) return [];
    const records = await this.client.hmget(this.keys.deadInfo, ...members);
    return members.map((member, i) => parseDead(member, records[i] ?? null));
  }

  /** Gives dead parents a fresh start: the named ones, or up to `limit` of the oldest. */
  revive(members: readonly string[] | 'all', now: number, limit: number): Promise<number> {
    const k = this.keys;
    const named = members === 'all' ? [] : members.slice(0, MAX_BATCH);
    return this.client.coalesceReviveDead(k.dead, k.deadInfo, k.pending, k.since, now, limit, ...named);
  }

  /** Removes dead parents: the named ones, or up to `limit` of the oldest. */
  async purge(members: readonly string[] | 'all', limit: number): Promise<number> {
    const named = members === 'all' ? await this.client.zrange(this.keys.dead, 0, limit - 1) : members.slice(0, MAX_BATCH);
    if (named.length === 0) return 0;
    const [[err, removed] = [null, 0]] =
      (await this.client
        .multi()
        .zrem(this.keys.dead, ...named)
        .hdel(this.keys.deadInfo, ...named)
        .exec()) ?? [];
    if (err) throw err;
    return Number(removed);
  }

  /** Sizes of every set, in one round trip. */
  async counts(now: number): Promise<Counts> {
    const k = this.keys;
    const replies = await this.client
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

  /**
   * Which of `members` the drain still has business with: pending, settling, leased (in
   * flight), waiting to retry, or marked while held (`dirty`). One pipelined round trip.
   */
  async busy(members: readonly string[]): Promise<boolean[]> {
    if (members.length === 0) return [];
    const k = this.keys;
    const sets = [k.pending, k.settling, k.leases, k.delayed];
    const batches = chunks(members, MAX_BATCH);
    const pipeline = this.client.pipeline();
    for (const batch of batches) {
      for (const key of sets) pipeline.zmscore(key, ...batch);
      pipeline.hmget(k.dirty, ...batch);
    }
    const replies = ((await pipeline.exec()) ?? []).map(([err, value]) => {
      if (err) throw err;
      return value as (string | null)[];
    });
    const per = sets.length + 1;
    return members.map((_m, i) => {
      const b = Math.floor(i / MAX_BATCH);
      return replies.slice(b * per, b * per + per).some((reply) => reply[i % MAX_BATCH] != null);
    });
  }

  /** The `n` hottest pending members with their scores. */
  async top(n: number): Promise<{ member: string; score: number }[]> {
    const flat = await this.client.zrevrange(this.keys.pending, 0, n - 1, 'WITHSCORES');
    const out: { member: string; score: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
    return out;
  }

  /** Deletes every key of the namespace (tests, `coalesce reset`). */
  async clear(): Promise<void> {
    await this.client.del(...Object.values(this.keys));
  }
}

function flatMark(entries: readonly MarkEntry[]): Arg[] {
  return entries.flatMap((e) => [e.member, e.increment, e.base]);
}

function parseDead(member: string, record: string | null): DeadEntry {
  try {
    const r = JSON.parse(record ?? '{}') as Partial<Record<keyof DeadEntry, unknown>>;
    return {
      member,
      error: typeof r.error === 'string' ? r.error : 'unknown',
      attempts: Number(r.attempts ?? 0),
      score: Number(r.score ?? 0),
      at: Number(r.at ?? 0),
    };
  } catch {
    return { member, error: 'unreadable dead-letter record', attempts: 0, score: 0, at: 0 };
  }
}
