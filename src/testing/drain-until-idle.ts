import { CoalesceError, ConfigError, type Coalescer, type CoalescerStats, type DrainResult, type FailedEvent } from '../index';
import { emptyResult } from '../drain/types';

/** Options of {@link drainUntilIdle}. */
export interface DrainUntilIdleOptions {
  /** Longest the whole call may take; then it rejects with an {@link NotIdleError}. */
  timeoutMs: number;
  /**
   * Recomputes run at once by each drain.
   * @defaultValue 1
   */
  concurrency?: number;
  /**
   * What a failed recompute does: `'reject'` rejects once the drain it failed in is over, with
   * its member and error (a test wants to know at once); `'retry'` waits for its retries like a
   * runner would, within `timeoutMs` (to test retries; a dead-lettered parent is then counted).
   * @defaultValue 'reject'
   */
  failed?: 'reject' | 'retry';
  /**
   * Pause between two looks while parents settle (their quiet period), wait for a retry, or are
   * in flight in another worker.
   * @defaultValue 25
   */
  pollMs?: number;
}

/** What {@link drainUntilIdle} did: its drains' results added up. */
export type IdleTotals = Omit<DrainResult, 'pendingAtStart'> & {
  /** Drains run. */
  drains: number;
};

/** What was left when {@link drainUntilIdle} gave up. */
export interface IdleLeft {
  pending: number;
  settling: number;
  inflight: number;
  delayed: number;
  dead: number;
  /** A few of the hottest pending members. */
  members: string[];
  /** A few dead members. */
  deadMembers: string[];
}

/** {@link drainUntilIdle} gave up: parents still wait after `timeoutMs`, or a recompute failed. */
export class NotIdleError extends CoalesceError {
  constructor(
    message: string,
    /** What was left, when it could be read. */
    readonly left: IdleLeft | undefined,
    /** The failed recomputes seen, when one made it give up. */
    readonly failures: readonly FailedEvent[] = [],
  ) {
    super(message, failures[0] ? { cause: failures[0].error } : undefined);
  }
}

const SAMPLE = 5;

/**
 * Drains until the namespace is idle: nothing pending, settling, in flight or waiting for a
 * retry (dead parents do not count). Marks still on their way are flushed first, the outbox is
 * relayed by each drain, and parents in their quiet period (`settleMs`) or in flight in another
 * worker are waited for. A parent chain (Order -> Customer) is followed to its end. Resolves
 * with the drains' totals; rejects with an {@link NotIdleError} naming what is left after
 * `timeoutMs`, or the failed recompute (see `failed`).
 *
 * @example
 * ```ts
 * await repo.save(lines);
 * await drainUntilIdle(coalescer, { timeoutMs: 10_000 });
 * ```
 */
export async function drainUntilIdle(coalescer: Coalescer, options: DrainUntilIdleOptions): Promise<IdleTotals> {
  const { timeoutMs, concurrency = 1, failed = 'reject', pollMs = 25 } = options ?? ({} as DrainUntilIdleOptions);
  const check = (name: string, value: unknown, min: number): void => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new ConfigError(`invalid drainUntilIdle option "${name}" = ${String(value)}: expected an integer >= ${min}`);
    }
  };
  check('timeoutMs', timeoutMs, 0);
  check('concurrency', concurrency, 1);
  check('pollMs', pollMs, 1);
  if (failed !== 'reject' && failed !== 'retry') {
    throw new ConfigError(`invalid drainUntilIdle option "failed" = ${JSON.stringify(failed)}: expected 'reject' or 'retry'`);
  }
  const deadline = Date.now() + timeoutMs;
  const totals = emptyTotals();
  const failures: FailedEvent[] = [];
  const onFailed = (event: FailedEvent): void => void failures.push(event);
  coalescer.on('failed', onFailed);
  try {
    for (;;) {
      await coalescer.flushed();
      const result = await coalescer.drain({ concurrency, maxMs: Math.max(0, deadline - Date.now()) });
      add(totals, result);
      if (failed === 'reject' && failures.length > 0) {
        const [first] = failures;
        throw new NotIdleError(
          `drainUntilIdle: the recompute of ${first?.member} failed: ${errorText(first?.error)}` +
            (failures.length > 1 ? ` (and ${failures.length - 1} more)` : '') +
            ` (pass failed: 'retry' to wait for retries)`,
          await left(coalescer).catch(() => undefined),
          failures,
        );
      }
      const stats = await coalescer.stats();
      if (result.claimed === 0 && isIdle(stats)) return totals;
      if (Date.now() >= deadline) {
        const what = await left(coalescer, stats);
        throw new NotIdleError(`drainUntilIdle: not idle after ${timeoutMs} ms (timeoutMs): ${describe(what)}`, what, failures);
      }
      // Nothing claimable now: wait for a quiet period, a retry or another worker's recompute.
      if (result.claimed === 0) await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs, deadline - Date.now())));
    }
  } finally {
    coalescer.off('failed', onFailed);
  }
}

function isIdle(s: CoalescerStats): boolean {
  return s.pending + s.settling + s.inflight + s.delayed === 0;
}

async function left(coalescer: Coalescer, known?: CoalescerStats): Promise<IdleLeft> {
  const stats = known ?? (await coalescer.stats());
  const [hot, dead] = await Promise.all([coalescer.hottest(SAMPLE), coalescer.dead.list({ limit: SAMPLE })]);
  return {
    pending: stats.pending,
    settling: stats.settling,
    inflight: stats.inflight,
    delayed: stats.delayed,
    dead: stats.dead,
    members: hot.map((h) => h.member),
    deadMembers: dead.map((d) => d.member),
  };
}

function describe(l: IdleLeft): string {
  const counts = `${l.pending} pending, ${l.settling} settling, ${l.inflight} in flight, ${l.delayed} waiting to retry, ${l.dead} dead`;
  const members = l.members.length > 0 ? `; pending: ${l.members.join(', ')}` : '';
  const dead = l.deadMembers.length > 0 ? `; dead: ${l.deadMembers.join(', ')}` : '';
  return counts + members + dead;
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

function emptyTotals(): IdleTotals {
  const { pendingAtStart: _pendingAtStart, ...totals } = emptyResult();
  return { drains: 0, ...totals };
}

function add(totals: IdleTotals, r: DrainResult): void {
  totals.drains += 1;
  for (const key of Object.keys(totals) as (keyof IdleTotals)[]) {
    if (key !== 'drains') totals[key] += r[key];
  }
}
