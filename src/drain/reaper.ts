import type { DrainParts } from './parts';

/** Most leases reaped or retries promoted per call, repeated until none are left. */
const REQUEUE_LIMIT = 1000;

/** What one pass of the reaper did. */
export interface Requeued {
  readonly reaped: number;
  readonly promoted: number;
  readonly deadLettered: number;
}

/**
 * Gives back expired leases (counting each as an attempt) and promotes due retries, each until
 * none are left: before a drain, and now and then during a long one.
 */
export async function requeue(parts: Pick<DrainParts, 'outcomes' | 'clock' | 'settings' | 'logger'>): Promise<Requeued> {
  const { outcomes, clock, settings, logger } = parts;
  let reaped = 0;
  let deadLettered = 0;
  for (let n = REQUEUE_LIMIT; n === REQUEUE_LIMIT;) {
    const r = await outcomes.reapExpired(clock.now(), REQUEUE_LIMIT, settings.retry.attempts);
    n = r.requeued + r.dead;
    reaped += r.requeued;
    deadLettered += r.dead;
  }
  let promoted = 0;
  for (let n = REQUEUE_LIMIT; n === REQUEUE_LIMIT; promoted += n) n = await outcomes.promoteDue(clock.now(), REQUEUE_LIMIT);
  if (reaped + deadLettered > 0) {
    logger.warn(
      { reaped, deadLettered },
      'leases past their deadline given back to pending (a worker crashed or stalled); at the attempt limit, dead-lettered',
    );
  }
  return { reaped, promoted, deadLettered };
}
