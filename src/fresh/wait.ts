import type { Reads } from '../redis/reads';
import { FreshTimeoutError, ParentDeadError } from '../errors';
import type { EventHub } from './events';
import { describe, type ParentState } from './state';

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
export async function waitFresh(
  reads: Pick<Reads, 'generations'>,
  hub: Pick<EventHub, 'watchAcks'>,
  members: readonly string[],
  options: WaitOptions,
): Promise<void> {
  if (members.length === 0) return;
  // Member -> generation still to be covered; undefined until read.
  let goals: Map<string, number> | undefined;
  const seen = new Map<string, number>();
  let changed: (() => void) | undefined;
  // With `runNow`: a recompute of another worker's ended without covering a member (it was in
  // flight when the member was marked), so this process starts the next one itself.
  let rerun: (() => void) | undefined;
  // Watch before reading: an ack between the read and the watch would be missed otherwise.
  const stop = await hub.watchAcks((acked, generations) => {
    acked.forEach((m, i) => {
      const g = Number(generations[i]);
      if (!goals) {
        if (members.includes(m)) seen.set(m, Math.max(g, seen.get(m) ?? -1));
      } else if (goals.has(m) && g >= (goals.get(m) as number)) {
        goals.delete(m);
        changed?.();
      } else if (goals.has(m)) {
        rerun?.();
      }
    });
  });
  try {
    const first = await reads.generations(members);
    goals = new Map();
    members.forEach((m, i) => {
      const g = first[i];
      if (!g || g.waiting === undefined || (g.covered ?? -1) >= g.waiting || (seen.get(m) ?? -1) >= g.waiting) return;
      goals?.set(m, g.waiting);
    });
    const open = goals;
    if (open.size === 0) return;
    const runNow = options.runNow;
    await runNow?.([...open.keys()]);
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
      // Called from I/O callbacks only, so never before `poll` and `timer` below exist.
      changed = () => {
        if (open.size === 0) finish();
      };
      if (runNow) {
        // One run at a time; a failed one is retried by the next poll (or said by the timeout).
        let running = false;
        rerun = () => {
          if (running || settled || open.size === 0) return;
          running = true;
          runNow([...open.keys()])
            .catch(() => undefined)
            .finally(() => (running = false));
        };
      }
      const fail = (member: string, make: (s: ParentState | undefined) => Error): void => {
        void options.state(member).then(
          (s) => finish(make(s)),
          () => finish(make(undefined)),
        );
      };
      const poll = setInterval(() => {
        const waiting = [...open.keys()];
        reads.generations(waiting).then(
          (found) => {
            waiting.forEach((m, i) => {
              const g = found[i];
              if (!g || g.waiting === undefined || (g.covered ?? -1) >= (open.get(m) ?? Infinity)) open.delete(m);
              else if (g.dead) fail(m, (s) => new ParentDeadError(m, s?.dead?.error ?? 'unknown error'));
            });
            changed?.();
            rerun?.();
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
      // Acknowledgements that came during runNow may have covered every member already.
      changed();
    });
  } finally {
    await stop();
  }
}

/** `why`, said of `member` when the caller asked about another parent of its chain. */
function chained(member: string, on: string | undefined, why: string): string {
  return on === undefined || on === member ? why : `${member}, below it in its chain, is ${why}`;
}
