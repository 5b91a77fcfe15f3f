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
  /**
   * Wait for the parents below this one in its chains too (the orders of a customer, and their
   * own chained children): a save of an order line is then covered by `fresh(Customer, id)`.
   * Costs one query per chain level; more than 10,000 parents below it is an error.
   * @defaultValue true
   */
  chain?: boolean;
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

/** What a waiter needs besides the members. */
export interface WaitOptions {
  /** Longest to wait now. */
  readonly timeoutMs: number;
  /** The whole wait the caller asked for, named in the timeout's error (default: `timeoutMs`). */
  readonly askedMs?: number;
  /** Recomputes the members still waiting in this process, before waiting (`fresh({ now: true })`). */
  readonly runNow?: (members: readonly string[]) => Promise<unknown>;
  /** One member's state, for the error that ends a wait. */
  readonly state: (member: string) => Promise<ParentState>;
  /** Names the member the caller asked about, when it waits on others of its chain. */
  readonly on?: string;
}

/**
 * Waits until, for each of `members`, a recompute covering every mark of it made so far has been
 * acknowledged: each mark's generation is compared with the one acknowledged recomputes covered
 * (from the acks' messages on the event channel, or read now and then). Resolves at once when
 * nothing waits. Rejects with a FreshTimeoutError after `timeoutMs`, or a ParentDeadError when
 * one of them is dead-lettered.
 */
export async function waitFresh(store: Store, hub: EventHub, members: readonly string[], options: WaitOptions): Promise<void> {
  if (members.length === 0) return;
  // Member -> generation still to be covered; undefined until read.
  let goals: Map<string, number> | undefined;
  const seen = new Map<string, number>();
  let changed: (() => void) | undefined;
  // Watch before reading: an ack between the read and the watch would be missed otherwise.
  const stop = await hub.watchAcks((acked, generations) => {
    acked.forEach((m, i) => {
      const g = Number(generations[i]);
      if (!goals) {
        if (members.includes(m)) seen.set(m, Math.max(g, seen.get(m) ?? -1));
      } else if (goals.has(m) && g >= (goals.get(m) as number)) {
        goals.delete(m);
        changed?.();
      }
    });
  });
  try {
    const first = await store.generations(members);
    goals = new Map();
    members.forEach((m, i) => {
      const g = first[i];
      if (!g || g.waiting === undefined || (g.covered ?? -1) >= g.waiting || (seen.get(m) ?? -1) >= g.waiting) return;
      goals?.set(m, g.waiting);
    });
    const open = goals;
    if (open.size === 0) return;
    await options.runNow?.([...open.keys()]);
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
      changed = () => {
        if (open.size === 0) finish();
      };
      changed();
      const fail = (member: string, make: (s: ParentState | undefined) => Error): void => {
        void options.state(member).then(
          (s) => finish(make(s)),
          () => finish(make(undefined)),
        );
      };
      const poll = setInterval(() => {
        const waiting = [...open.keys()];
        store.generations(waiting).then(
          (found) => {
            waiting.forEach((m, i) => {
              const g = found[i];
              if (!g || g.waiting === undefined || (g.covered ?? -1) >= (open.get(m) ?? Infinity)) open.delete(m);
              else if (g.dead) fail(m, (s) => new ParentDeadError(m, s?.dead?.error ?? 'unknown error'));
            });
            changed?.();
          },
          () => undefined,
        );
      }, POLL_MS);
      const timer = setTimeout(() => {
        const m = open.keys().next().value as string;
        fail(
          m,
          (s) =>
            new FreshTimeoutError(
              options.on ?? m,
              options.askedMs ?? options.timeoutMs,
              chained(m, options.on, s ? describe(s) : 'state unknown: Redis did not answer'),
            ),
        );
      }, options.timeoutMs);
    });
  } finally {
    await stop();
  }
}

/** `why`, said of `member` when the caller asked about another parent of its chain. */
function chained(member: string, on: string | undefined, why: string): string {
  return on === undefined || on === member ? why : `${member}, below it in its chain, is ${why}`;
}

function describe(s: ParentState): string {
  if (s.dead) return `dead-lettered: ${s.dead.error}`;
  if (s.inflight) return 'a recompute is running now';
  if (s.retrying) return `retrying after ${s.retrying.attempts} failed attempts`;
  if (s.settling) return 'settling';
  if (s.waiting) return `pending with heat ${s.heat}: is a runner draining this namespace?`;
  return 'no longer waiting';
}
