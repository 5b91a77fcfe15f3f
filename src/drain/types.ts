import { ConfigError } from '../errors';
import type { ParentId } from '../registry/members';

/** Options of one drain. */
export interface DrainOptions {
  /**
   * Recomputes run at once in this process; one claimer feeds them all.
   * @defaultValue 1
   */
  concurrency?: number;
  /** Stop after claiming this many parents. */
  max?: number;
  /** Stop claiming after this many ms; work in flight finishes. */
  maxMs?: number;
  /**
   * Most parents read (ZREVRANGE) and claimed per round trip. The claimer sizes its windows
   * below this so that what it claims starts within a couple of seconds; 1 claims one parent at
   * a time (the literal ZREVRANGE 0 0 + checked ZREM loop).
   * @defaultValue 500
   */
  window?: number;
  /** Stop claiming when aborted; claimed parents not yet started are given back at once. */
  signal?: AbortSignal;
  /**
   * Leave parents marked during their recompute in their type's minimum interval (minIntervalMs)
   * for a later drain, rather than recompute them before returning. A runner's drains do.
   * @defaultValue false
   */
  leaveCooling?: boolean;
  /** Called after each window is claimed and after the drain, with the running totals. */
  onProgress?: (progress: DrainResult) => void;
}

/** What one drain did. */
export interface DrainResult {
  /** Parents claimed. */
  claimed: number;
  /** Parents recomputed successfully. */
  recomputed: number;
  /** Recomputes that failed (retried later or dead-lettered). */
  failed: number;
  /** Of the failed, parents moved to the dead set. */
  deadLettered: number;
  /** Members read at the top of the set that another worker claimed first. */
  lostRaces: number;
  /** Recomputed parents marked again while recomputed, now pending again. */
  rearmed: number;
  /** Leases past their deadline given back to pending (or dead-lettered at their attempt limit). */
  reaped: number;
  /** Retries whose backoff was over, moved back to pending before draining. */
  promoted: number;
  /** Claimed parents given back unstarted (the drain was stopped, or their lease ran short). */
  released: number;
  /**
   * Acks and failures of claims whose lease had passed on: they changed nothing of the current
   * claim, and marked their parent once more.
   */
  superseded: number;
  /** Members spelled another way than their parent's canonical member, whose heat was moved to it. */
  redirected: number;
  /** Pending parents seen when the drain started (a progress total). */
  pendingAtStart: number;
  durationMs: number;
}

/** Emitted for each parent recomputed. */
export interface RecomputedEvent {
  member: string;
  parent: string;
  id: ParentId;
  /**
   * Ms from the parent's first mark to the start of its recompute; measured for a sample (the
   * first 16 parents of each claimed window), undefined for the others.
   */
  waitMs: number | undefined;
  durationMs: number;
}

/** Emitted for each failed recompute. */
export interface FailedEvent {
  member: string;
  parent: string | undefined;
  id: ParentId | undefined;
  error: unknown;
  /** Attempts made so far, this one included. */
  attempt: number;
  /** True when the parent went to the dead set. */
  dead: boolean;
  /** When it will be tried again (ms, server time), if it will. */
  retryAt: number | undefined;
}

/** A new, empty result. */
export function emptyResult(): DrainResult {
  return {
    claimed: 0,
    recomputed: 0,
    failed: 0,
    deadLettered: 0,
    lostRaces: 0,
    rearmed: 0,
    reaped: 0,
    promoted: 0,
    released: 0,
    superseded: 0,
    redirected: 0,
    pendingAtStart: 0,
    durationMs: 0,
  };
}

/** Checks the options of `drain()`; a ConfigError names the bad one. */
export function checkDrainOptions(options: DrainOptions): void {
  const check = (name: string, value: number | undefined, min: number): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < min)) {
      throw new ConfigError(`invalid drain option "${name}" = ${String(value)}: expected an integer >= ${min}`);
    }
  };
  check('concurrency', options.concurrency, 1);
  check('max', options.max, 0);
  check('window', options.window, 1);
  check('maxMs', options.maxMs, 0);
}
