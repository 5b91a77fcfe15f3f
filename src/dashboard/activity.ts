import type { Coalescer } from '../coalescer';
import type { DrainResult, FailedEvent, RecomputedEvent } from '../drain/drainer';
import { errorMessage } from '../errors';
import type { LiveEvent, Subscription } from '../fresh/events';

/** A parent recomputed, as the dashboard streams it. */
export interface RecomputedActivity {
  readonly type: 'recomputed';
  /** Ms when it was seen. */
  readonly at: number;
  readonly member: string;
  /** Ms from first mark to recompute start, when measured. */
  readonly waitMs: number | null;
  readonly durationMs: number;
}

/** A recompute failed, as the dashboard streams it. */
export interface FailedActivity {
  readonly type: 'failed';
  readonly at: number;
  readonly member: string;
  readonly error: string;
  readonly attempt: number;
  readonly dead: boolean;
  readonly retryAt: number | null;
}

/** A drain ended, as the dashboard streams it. */
export interface DrainedActivity {
  readonly type: 'drained';
  readonly at: number;
  readonly claimed: number;
  readonly recomputed: number;
  readonly failed: number;
  readonly durationMs: number;
}

/** Something that happened in a namespace. */
export type Activity = RecomputedActivity | FailedActivity | DrainedActivity;

/** Subscribes a listener to a namespace's activity; returns the function that unsubscribes it. */
export type ActivitySource = (listener: (activity: Activity) => void) => () => void;

/**
 * The activity the dashboard streams: the namespace's live events from every process (the
 * event channel, so `coalesce dashboard` shows what runners elsewhere do). Should the channel
 * not open (Redis away), the coalescer's own events stand in.
 */
export function coalescerActivity(coalescer: Coalescer, clock: () => number = Date.now): ActivitySource {
  return (listener) => {
    let closed = false;
    let subscription: Subscription | undefined;
    let local: (() => void) | undefined;
    const forward = (e: LiveEvent): void => listener(activityOf(e.type === 'drained' ? e.result : e, clock()));
    coalescer.subscribe(forward).then(
      (s) => {
        if (closed) void s.close();
        else subscription = s;
      },
      (error: unknown) => {
        coalescer.logger.warn(
          { err: errorMessage(error) },
          "dashboard: the event channel did not open; showing this process's events only",
        );
        if (!closed) local = localActivity(coalescer, clock)(listener);
      },
    );
    return () => {
      closed = true;
      void subscription?.close();
      local?.();
    };
  };
}

type Happened = ({ readonly type: 'recomputed' } & RecomputedEvent) | ({ readonly type: 'failed' } & FailedLike) | DrainResult;
type FailedLike = Pick<FailedEvent, 'member' | 'attempt' | 'dead' | 'retryAt'> & { readonly error: unknown };

/** What the dashboard streams of an event, from this process or from the event channel. */
function activityOf(e: Happened, at: number): Activity {
  if (!('type' in e)) {
    return { type: 'drained', at, claimed: e.claimed, recomputed: e.recomputed, failed: e.failed, durationMs: e.durationMs };
  }
  if (e.type === 'recomputed') {
    return { type: 'recomputed', at, member: e.member, waitMs: e.waitMs ?? null, durationMs: e.durationMs };
  }
  return {
    type: 'failed',
    at,
    member: e.member,
    error: errorMessage(e.error),
    attempt: e.attempt,
    dead: e.dead,
    retryAt: e.retryAt ?? null,
  };
}

/** The coalescer's own events (this process's drains only). */
export function localActivity(coalescer: Coalescer, clock: () => number = Date.now): ActivitySource {
  return (listener) => {
    const recomputed = (e: RecomputedEvent): void => listener(activityOf({ type: 'recomputed', ...e }, clock()));
    const failed = (e: FailedEvent): void => listener(activityOf({ type: 'failed', ...e }, clock()));
    const drained = (r: DrainResult): void => listener(activityOf(r, clock()));
    coalescer.on('recomputed', recomputed);
    coalescer.on('failed', failed);
    coalescer.on('drained', drained);
    return () => {
      coalescer.off('recomputed', recomputed);
      coalescer.off('failed', failed);
      coalescer.off('drained', drained);
    };
  };
}
