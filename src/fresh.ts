import type { Store } from './redis/store';
import type { EventHub } from './events';
import { FreshTimeoutError, ParentDeadError } from './errors';
import { heatOf } from './registry';

/** Options of `fresh()`. */
export interface FreshOptions {
  /**
   * Longest to wait; then a FreshTimeoutError naming the parent.
   * @defaultValue 30000
   */
  timeoutMs?: number;
  /**
   * Recompute the parent in this process at once (through the same claim, lease and ack as a
   * drain, so never alongside a runner) instead of waiting for a runner. A parent another worker
   * is recomputing now is waited for.
   * @defaultValue false
   */
  now?: boolean;
}

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
  store: Store,
  member: string,
  now: number,
  kept: (member: string) => Promise<boolean> = async () => false,
): Promise<ParentState> {
  const [s, inOutbox] = await Promise.all([store.memberState(member), kept(member)]);
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

/** How often a waiter reads the generations itself, in case an acknowledgement message was missed. */
const POLL_MS = 500;

/**
 * Waits until a recompute that covers every mark of `member` made so far has been
 * acknowledged: the mark's generation is compared with the one acknowledged recomputes covered
 * (from the ack's message on the event channel, or read now and then). Resolves at once when
 * nothing waits. `runNow` recomputes it in this process first.
 */
export async function waitFresh(
  store: Store,
  hub: EventHub,
  member: string,
  options: { timeoutMs: number; runNow?: () => Promise<unknown>; state: () => Promise<ParentState> },
): Promise<void> {
  let target: number | undefined;
  let done: (() => void) | undefined;
  const seen: number[] = [];
  // Watch before reading: an ack between the read and the watch would be missed otherwise.
  const stop = await hub.watchAcks((members, generations) => {
    members.forEach((m, i) => {
      if (m !== member) return;
      const g = Number(generations[i]);
      if (target === undefined) seen.push(g);
      else if (g >= target) done?.();
    });
  });
  try {
    const first = await store.generation(member);
    if (first.waiting === undefined || (first.covered ?? -1) >= first.waiting) return;
    const goal = first.waiting;
    target = goal;
    if (seen.some((g) => g >= goal)) return;
    await options.runNow?.();
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearInterval(poll);
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      done = () => finish();
      const poll = setInterval(() => {
        store.generation(member).then(
          (g) => {
            if (g.waiting === undefined || (g.covered ?? -1) >= goal) finish();
            else if (g.dead) {
              void options.state().then(
                (s) => finish(new ParentDeadError(member, s.dead?.error ?? 'unknown error')),
                () => finish(new ParentDeadError(member, 'unknown error')),
              );
            }
          },
          () => undefined,
        );
      }, POLL_MS);
      const timer = setTimeout(() => {
        void options.state().then(
          (s) => finish(new FreshTimeoutError(member, options.timeoutMs, describe(s))),
          () => finish(new FreshTimeoutError(member, options.timeoutMs, 'state unknown: Redis did not answer')),
        );
      }, options.timeoutMs);
    });
  } finally {
    await stop();
  }
}

function describe(s: ParentState): string {
  if (s.dead) return `dead-lettered: ${s.dead.error}`;
  if (s.inflight) return 'a recompute is running now';
  if (s.retrying) return `retrying after ${s.retrying.attempts} failed attempts`;
  if (s.settling) return 'settling';
  if (s.waiting) return `pending with heat ${s.heat}: is a runner draining this namespace?`;
  return 'no longer waiting';
}
