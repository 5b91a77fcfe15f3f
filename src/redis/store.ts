import type { Keys } from './keys';
import { allKeys } from './keys';
import { defineScripts, type Arg, type RedisClient } from './scripts';

/** One parent to mark: its member, how much heat to add, and the base of its score (priority). */
export interface MarkEntry {
  readonly member: string;
  readonly increment: number;
  readonly base: number;
}

/**
 * A member read for a claim: its exact bytes (as text when they are valid UTF-8, which encodes
 * back to the same bytes and is cheaper to send), and its score as read ('' when not read).
 */
export interface Candidate {
  readonly key: Buffer | string;
  readonly score: string;
}

/** A member won by a claim, by its index among the candidates. */
export interface Won {
  readonly index: number;
  /** Score at claim time (priority base + heat). */
  readonly score: number;
  /** Ms of the first mark not yet covered by a recompute, for the sampled claims. */
  readonly since: number | undefined;
  /** Failed attempts before this one. */
  readonly attempts: number;
}

/** A claim as the scripts know it: the member's exact bytes and the token that proves ownership. */
export interface ClaimRef {
  readonly key: Buffer | string;
  readonly token: string;
}

/** A recomputed parent to acknowledge. */
export interface AckEntry extends ClaimRef {
  readonly base: number;
  /** Ms from its first mark to the start of its recompute, recorded for lag figures. */
  readonly waitMs?: number | undefined;
}

/** A failed recompute: retry at `retryAt` (ms), or dead-letter when `retryAt` is undefined. */
export interface FailEntry extends ClaimRef {
  readonly retryAt: number | undefined;
  readonly error: string;
  readonly base: number;
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

/** Everything Redis holds about one parent (see {@link Store.memberState}). */
export interface MemberState {
  readonly pendingScore: number | undefined;
  readonly settlingUntil: number | undefined;
  readonly settlingScore: number | undefined;
  /** Ms of the first mark not yet covered by a recompute. */
  readonly since: number | undefined;
  readonly leaseDeadline: number | undefined;
  readonly retryAt: number | undefined;
  readonly attempts: number;
  /** Heat of marks that arrived while it was held. */
  readonly markedDuring: number;
  readonly dead: DeadEntry | undefined;
}

/** What `checkEpoch` found; see checkEpoch-4.lua. */
export interface EpochCheck {
  readonly status: 'ok' | 'fresh' | 'lost' | 'behind' | 'changed';
  readonly epoch: string;
  /** The namespace's fence counter after the check (raised to the floor when it was below). */
  readonly fence: number;
  /** Whether the type policies are in Redis (they go with a data loss and must be written again). */
  readonly policies: boolean;
  /** Parent types whose rebuild after a data loss is unfinished. */
  readonly rebuilding: number;
}

/** Pending members counted per parent type by {@link Store.pendingByType}. */
export interface PendingByType {
  /** Type name -> members of that type among those scanned. */
  readonly byType: Record<string, number>;
  /** Members scanned. */
  readonly scanned: number;
  /** Size of the pending set. */
  readonly total: number;
  /** True when every pending member was scanned, so `byType` is exact. */
  readonly exact: boolean;
}

/** Most members sent in one script call; larger inputs are split so no call is unbounded. */
export const MAX_BATCH = 500;

/** `items` in slices of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The Redis side of one namespace: every command and script the coalescer sends. Knows members
 * and scores, nothing of TypeORM. Members read back for claims are raw bytes, so a member that
 * is not valid UTF-8 is still claimed (and dead-lettered) rather than spun on.
 */
export class Store {
  constructor(
    readonly client: RedisClient,
    readonly keys: Keys,
    /** The namespace's event channel, where acknowledgements are published for fresh() readers. */
    readonly channel: string,
  ) {
    defineScripts(client);
  }

  /** Keys markOne needs, in the order the scripts take them. */
  private markKeys(): string[] {
    const k = this.keys;
    return [k.pending, k.since, k.claims, k.dirty, k.dirtyAt, k.dead, k.deadInfo, k.due, k.settling, k.settleHeat, k.policy];
  }

  /**
   * Adds heat to parents in one round trip (one script call per {@link MAX_BATCH} parents,
   * pipelined). Returns the distinct parents marked, the namespace's epoch as the marks found
   * it ('' when Redis holds none) and the highest generation given (the namespace's fence
   * counter).
   */
  async mark(entries: readonly MarkEntry[], now: number): Promise<{ marked: number; epoch: string; generation: number }> {
    const keys = [...this.markKeys(), this.keys.epoch, this.keys.generations, this.keys.fence];
    const batches = chunks(entries, MAX_BATCH);
    const head: Arg[] = [...keys, now];
    const flat = (batch: readonly MarkEntry[]): Arg[] => batch.flatMap((e) => [e.member, e.increment, e.base]);
    if (batches.length <= 1) {
      const [marked, epoch, generation] = await this.client.coalesceMarkParents(...head, ...flat(batches[0] ?? []));
      return { marked, epoch, generation: Number(generation) };
    }
    const pipeline = this.client.pipeline();
    for (const batch of batches) pipeline.coalesceMarkParents(...head, ...flat(batch));
    const total = { marked: 0, epoch: '', generation: 0 };
    for (const [err, reply] of (await pipeline.exec()) ?? []) {
      if (err) throw err;
      const [n, e, g] = reply as [number, string, number];
      total.marked += n;
      total.epoch = e;
      total.generation = Math.max(total.generation, Number(g));
    }
    return total;
  }

  /**
   * The next window: settled parents promoted first, then up to `size` overdue members and the
   * hottest pending ones from rank `offset`.
   */
  async readWindow(
    now: number,
    size: number,
    offset: number,
  ): Promise<{ overdue: Buffer[]; top: (Candidate & { key: Buffer })[] }> {
    const k = this.keys;
    const flat = await this.client.coalesceReadWindowBuffer(k.settling, k.settleHeat, k.pending, k.due, now, size, offset);
    const n = Number(flat[0] ?? 0);
    const overdue = flat.slice(1, 1 + n) as Buffer[];
    const top: (Candidate & { key: Buffer })[] = [];
    for (let i = 1 + n; i + 1 < flat.length; i += 2) {
      top.push({ key: flat[i] as Buffer, score: (flat[i + 1] as Buffer).toString() });
    }
    return { overdue, top };
  }

  /**
   * Claims `candidates` (a checked ZREM and a lease each, in one script call); returns the
   * claim's fencing token and the ones this call won. The first `sample` won report their
   * first-mark time.
   */
  async claim(
    candidates: readonly Candidate[],
    leaseDeadline: number,
    sample = candidates.length,
  ): Promise<{ token: string; won: Won[] }> {
    if (candidates.length === 0) return { token: '', won: [] };
    const k = this.keys;
    const args: Arg[] = [leaseDeadline, sample];
    for (const c of candidates) args.push(c.key, c.score);
    const flat = await this.client.coalesceClaimParents(
      k.pending,
      k.leases,
      k.claims,
      k.attempts,
      k.due,
      k.since,
      k.fence,
      k.generations,
      ...args,
    );
    const won: Won[] = [];
    for (let i = 1; i + 3 < flat.length; i += 4) {
      const since = flat[i + 2];
      won.push({
        index: Number(flat[i]) - 1,
        score: Number(flat[i + 1]),
        since: since === '' || since === undefined ? undefined : Number(since),
        attempts: Number(flat[i + 3]),
      });
    }
    return { token: String(flat[0] ?? ''), won };
  }

  /**
   * Renews the leases of `claims` to `deadline`, in one pipelined round trip; returns the
   * indexes (0-based) of the claims no longer owned.
   */
  async extend(claims: readonly ClaimRef[], deadline: number): Promise<number[]> {
    const k = this.keys;
    const batches = chunks(claims, MAX_BATCH);
    const pipeline = this.client.pipeline();
    for (const batch of batches) {
      pipeline.coalesceExtendLeases(k.leases, k.claims, deadline, ...batch.flatMap((c) => [c.key, c.token]));
    }
    const lost: number[] = [];
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([err, reply], b) => {
      if (err) throw err;
      for (const i of reply as number[]) lost.push(b * MAX_BATCH + Number(i) - 1);
    });
    return lost;
  }

  /** Ends the claims of recomputed parents; re-arms those marked meanwhile. */
  async ack(entries: readonly AckEntry[], now: number): Promise<{ acked: number; rearmed: number; superseded: number }> {
    const k = this.keys;
    const total = { acked: 0, rearmed: 0, superseded: 0 };
    for (const batch of chunks(entries, MAX_BATCH)) {
      const args: Arg[] = [now, batch.length, this.channel];
      for (const e of batch) args.push(e.key, e.token, e.base);
      for (const e of batch) if (e.waitMs !== undefined) args.push(Math.max(0, Math.round(e.waitMs)));
      const [acked, rearmed, superseded] = await this.client.coalesceAckParents(
        k.leases,
        k.claims,
        k.attempts,
        k.pending,
        k.since,
        k.dirty,
        k.dirtyAt,
        k.dead,
        k.deadInfo,
        k.due,
        k.settling,
        k.settleHeat,
        k.policy,
        k.waits,
        k.generations,
        k.ackedGens,
        k.listening,
        ...args,
      );
      total.acked += acked;
      total.rearmed += rearmed;
      total.superseded += superseded;
    }
    return total;
  }

  /** Records failed recomputes: delayed retry or dead letter. */
  async fail(entries: readonly FailEntry[], now: number): Promise<{ retried: number; dead: number; superseded: number }> {
    const k = this.keys;
    const total = { retried: 0, dead: 0, superseded: 0 };
    for (const batch of chunks(entries, MAX_BATCH)) {
      const args = batch.flatMap((e) => [e.key, e.token, e.retryAt ?? -1, e.error, e.base]);
      const [retried, dead, superseded] = await this.client.coalesceFailParents(
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
        k.settling,
        k.settleHeat,
        k.policy,
        now,
        ...args,
      );
      total.retried += retried;
      total.dead += dead;
      total.superseded += superseded;
    }
    return total;
  }

  /**
   * Gives leases past their deadline back to pending with their heat; at most `limit`. Each
   * counts as an attempt: at `maxAttempts` the parent is dead-lettered instead.
   */
  reapExpired(now: number, limit: number, maxAttempts: number): Promise<{ requeued: number; dead: number }> {
    return this.requeue(this.keys.leases, now, limit, maxAttempts, []);
  }

  /** Moves retries whose backoff is over back to pending; at most `limit`. */
  async promoteDue(now: number, limit: number): Promise<number> {
    return (await this.requeue(this.keys.delayed, now, limit, 0, [])).requeued;
  }

  /** Gives back to pending claims a worker holds and will not run, checked by token. */
  async release(claims: readonly ClaimRef[], now: number): Promise<number> {
    let released = 0;
    for (const batch of chunks(claims, MAX_BATCH)) {
      const pairs = batch.flatMap((c) => [c.key, c.token]);
      released += (await this.requeue(this.keys.leases, now, batch.length, 0, pairs)).requeued;
    }
    return released;
  }

  private async requeue(
    from: string,
    now: number,
    limit: number,
    maxAttempts: number,
    pairs: Arg[],
  ): Promise<{ requeued: number; dead: number }> {
    const k = this.keys;
    const [requeued, dead] = await this.client.coalesceRequeueHeld(
      from,
      k.claims,
      k.pending,
      k.since,
      k.dirty,
      k.dirtyAt,
      k.due,
      k.attempts,
      k.dead,
      k.deadInfo,
      now,
      limit,
      maxAttempts,
      ...pairs,
    );
    return { requeued, dead };
  }

  /** Publishes how each parent type is marked (priority, settleMs, maxWaitMs) for the scripts. */
  async writePolicies(policies: ReadonlyMap<string, TypePolicy>): Promise<void> {
    if (policies.size === 0) return;
    const fields: string[] = [];
    for (const [type, p] of policies) fields.push(type, `${p.base}|${p.settleMs}|${p.maxWaitMs ?? ''}`);
    await this.client.hset(this.keys.policy, ...fields);
  }

  /** Parent types some process of the namespace registered (their policies are published). */
  async policyTypes(): Promise<Set<string>> {
    return new Set(await this.client.hkeys(this.keys.policy));
  }

  /** Checks the namespace's epoch and fence counter against `floor`; see checkEpoch-4.lua. */
  async checkEpoch(known: string, candidate: string, floor: number, rebuildTypes: readonly string[]): Promise<EpochCheck> {
    const k = this.keys;
    const [status, epoch, policies, rebuilding, fence] = await this.client.coalesceCheckEpoch(
      k.epoch,
      k.policy,
      k.rebuild,
      k.fence,
      known,
      candidate,
      floor,
      ...rebuildTypes,
    );
    return {
      status: status as EpochCheck['status'],
      epoch,
      policies: Number(policies) === 1,
      rebuilding: Number(rebuilding),
      fence: Number(fence),
    };
  }

  /**
   * Which of `members` still wait for a recompute (pending, settling, held or dead), and the
   * fence counter read after them; 'lost' when the namespace's epoch is not `epoch` (Redis lost
   * its data: an absent member proves nothing).
   */
  async busy(members: readonly string[], epoch: string): Promise<{ busy: boolean[]; fence: number } | 'lost'> {
    const k = this.keys;
    const out: boolean[] = [];
    let fence = 0;
    for (const batch of chunks(members, MAX_BATCH)) {
      const reply = await this.client.coalesceBusyMembers(
        k.epoch,
        k.pending,
        k.settling,
        k.claims,
        k.dead,
        k.dirty,
        k.leases,
        k.fence,
        epoch,
        ...batch,
      );
      if (!Array.isArray(reply)) return 'lost';
      fence = Math.max(fence, Number(reply[0]));
      for (const flag of reply.slice(1)) out.push(Number(flag) === 1);
    }
    return { busy: out, fence };
  }

  /** Parent types whose rebuild after a data loss is unfinished, with the last id marked ('' before the first). */
  async rebuildCursors(): Promise<Map<string, string>> {
    const flat = await this.client.hgetall(this.keys.rebuild);
    return new Map(Object.entries(flat));
  }

  /** Moves a rebuild cursor from `from` to `to` (undefined: the type is done); false when another process moved it. */
  async advanceRebuild(type: string, from: string, to: string | undefined): Promise<boolean> {
    return (
      (await this.client.coalesceAdvanceRebuild(this.keys.rebuild, type, from, to ?? '', to === undefined ? 'done' : '')) === 1
    );
  }

  /** Recent waits (first mark to recompute start, ms), newest first; at most 1000 are kept. */
  async recentWaits(): Promise<number[]> {
    return (await this.client.lrange(this.keys.waits, 0, -1)).map(Number);
  }

  /** Dead-lettered parents, oldest first. */
  async listDead(offset: number, count: number): Promise<DeadEntry[]> {
    // As bytes: a member that is not UTF-8 still finds its record.
    const members = await this.client.zrangeBuffer(this.keys.dead, offset, offset + count - 1);
    if (members.length === 0) return [];
    const records = await this.client.hmgetBuffer(this.keys.deadInfo, ...members);
    return members.map((member, i) => parseDead(member.toString(), records[i]?.toString() ?? null));
  }

  /** Gives dead parents a fresh start: the named ones (any number), or up to `limit` of the oldest. */
  async revive(members: readonly string[] | 'all', now: number, limit: number): Promise<number> {
    const k = this.keys;
    const keys = [...this.markKeys(), k.attempts];
    if (members === 'all') return this.client.coalesceReviveDead(...keys, now, limit);
    let revived = 0;
    for (const batch of chunks(members, MAX_BATCH))
      revived += await this.client.coalesceReviveDead(...keys, now, limit, ...batch);
    return revived;
  }

  /**
   * Removes dead parents and every trace of them (records, attempts, generations): the named
   * ones (any number; those not dead are left alone), or up to `limit` of the oldest.
   */
  async purge(members: readonly string[] | 'all', limit: number): Promise<number> {
    const k = this.keys;
    const keys = [k.dead, k.deadInfo, k.attempts, k.generations, k.ackedGens];
    if (members === 'all') return this.client.coalescePurgeDead(...keys, limit);
    let removed = 0;
    for (const batch of chunks(members, MAX_BATCH)) removed += await this.client.coalescePurgeDead(...keys, limit, ...batch);
    return removed;
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

  /** The `n` hottest pending members with their scores. */
  async top(n: number): Promise<{ member: string; score: number }[]> {
    const flat = await this.client.zrevrange(this.keys.pending, 0, n - 1, 'WITHSCORES');
    const out: { member: string; score: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
    return out;
  }

  /**
   * For each member: the generation of its last mark still waiting for a recompute (undefined:
   * none waits), the one the last acknowledged recompute covered, and whether it is dead. One
   * round trip per {@link MAX_BATCH} members.
   */
  async generations(
    members: readonly string[],
  ): Promise<{ waiting: number | undefined; covered: number | undefined; dead: boolean }[]> {
    const k = this.keys;
    const out: { waiting: number | undefined; covered: number | undefined; dead: boolean }[] = [];
    const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
    for (const batch of chunks(members, MAX_BATCH)) {
      const replies =
        (await this.client
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
    const k = this.keys;
    const replies =
      (await this.client
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

  /** Ends the quiet period of those of `members` that are settling, now; returns how many were. */
  async promoteNow(members: readonly string[]): Promise<number> {
    const k = this.keys;
    let moved = 0;
    for (const batch of chunks(members, MAX_BATCH)) {
      moved += await this.client.coalescePromoteMembers(k.settling, k.settleHeat, k.pending, ...batch);
    }
    return moved;
  }

  /** Redis' own clock, in ms. */
  async time(): Promise<number> {
    const [s, us] = await this.client.time();
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
      const [next, flat] = await this.client.zscan(this.keys.pending, cursor, 'COUNT', Math.min(1000, maxScanned));
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
    const total = await this.client.zcard(this.keys.pending);
    return { byType, scanned, total, exact: cursor === '0' };
  }

  /** Pending members whose score lies in each `[min, max)` range (max may be Infinity), in one round trip. */
  async pendingInRanges(ranges: readonly (readonly [number, number])[]): Promise<number[]> {
    const multi = this.client.multi();
    for (const [min, max] of ranges) multi.zcount(this.keys.pending, min, max === Infinity ? '+inf' : `(${max}`);
    return ((await multi.exec()) ?? []).map(([err, n]) => {
      if (err) throw err;
      return Number(n);
    });
  }

  /** Deletes every key of the namespace (tests, and `coalesce` after a deliberate reset). */
  async clear(): Promise<void> {
    // The fence counter stays: fencing tokens and generations never repeat in a namespace.
    await this.client.del(...allKeys(this.keys).filter((key) => key !== this.keys.fence));
  }
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
