import type { Reads } from '../redis/reads';
import { heatOf } from '../redis/score';

/** One parent's state, for an "updating..." badge. */
export interface ParentState {
  readonly member: string;
  /** Waiting for a recompute: pending (claimable) or settling (in its quiet period). */
  readonly waiting: boolean;
  /** In its quiet period (settleMs) before it may be claimed. */
  readonly settling: boolean;
  /** Changes waiting (0 when none). */
  readonly heat: number;
  /** Age of the first change not yet recomputed, or null. */
  readonly firstMarkAgeMs: number | null;
  /** A worker is recomputing it now. */
  readonly inflight: boolean;
  /** Its last recompute failed: when the next attempt may start (server ms), and attempts so far. */
  readonly retrying: { readonly at: number; readonly attempts: number } | null;
  /** Dead-lettered, with the last error. */
  readonly dead: { readonly error: string; readonly attempts: number; readonly at: number } | null;
  /** Changes made while it was being recomputed (or waiting to retry): one more recompute follows. */
  readonly changedMeanwhile: number;
  /**
   * A change of it waits in the outbox (made while Redis was away): the next drain relays it.
   * `waiting` is true then too.
   */
  readonly kept: boolean;
}

/** Reads one parent's state from Redis, and whether the outbox keeps a change of it (`kept`). */
export async function parentState(
  reads: Pick<Reads, 'memberState'>,
  member: string,
  now: number,
  kept: (member: string) => Promise<boolean> = async () => false,
): Promise<ParentState> {
  const [s, inOutbox] = await Promise.all([reads.memberState(member), kept(member)]);
  const score = s.pendingScore ?? s.settlingScore;
  return {
    member,
    waiting: inOutbox || s.pendingScore !== undefined || s.settlingUntil !== undefined,
    kept: inOutbox,
    settling: s.settlingUntil !== undefined,
    heat: score === undefined ? 0 : heatOf(score),
    firstMarkAgeMs: s.since === undefined ? null : Math.max(0, now - s.since),
    inflight: s.leaseDeadline !== undefined,
    retrying: s.retryAt === undefined ? null : { at: s.retryAt, attempts: s.attempts },
    dead: s.dead ? { error: s.dead.error, attempts: s.dead.attempts, at: s.dead.at } : null,
    changedMeanwhile: s.markedDuring,
  };
}

/** What a parent's state says, for the error that ends a wait on it. */
export function describe(s: ParentState): string {
  if (s.dead) return `dead-lettered: ${s.dead.error}`;
  if (s.inflight) return 'a recompute is running now';
  if (s.retrying) return `retrying after ${s.retrying.attempts} failed attempts`;
  if (s.settling) return 'settling';
  if (s.waiting) return `pending with heat ${s.heat}: is a runner draining this namespace?`;
  return 'no longer waiting';
}
