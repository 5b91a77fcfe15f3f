import type { CoalesceLogger as Logger } from '../log';
import type { AckEntry } from '../redis/records';
import type { Outcomes } from '../redis/outcomes';
import type { ServerClock } from '../redis/clock';
import { errorMessage } from '../errors';
import type { Claim, LeaseKeeper } from './leases';

/** Longest an acknowledgement waits for others to share its round trip. */
export const ACK_DELAY_MS = 2;

/** What the acknowledgements did, added to a drain's result. */
export interface AckTotals {
  rearmed: number;
  superseded: number;
}

/**
 * Acknowledgements of recomputed parents, batched by time (sent within {@link ACK_DELAY_MS} of
 * the first one waiting) and by count, so a finished parent's lease is never held for long:
 * another drainer's reaper never mistakes a finished recompute for a crashed one. A claim
 * stays with the lease keeper until its acknowledgement has been answered.
 */
/** What an ack buffer needs. */
export interface AckBufferOptions {
  readonly outcomes: Pick<Outcomes, 'ack'>;
  readonly keeper: Pick<LeaseKeeper, 'end' | 'drop'>;
  readonly clock: Pick<ServerClock, 'now'>;
  readonly logger: Logger;
  /** Most acknowledgements per round trip. */
  readonly batch: number;
  /** Where re-armed and superseded counts are added. */
  readonly totals: AckTotals;
}

export class AckBuffer {
  private entries: { entry: AckEntry; claim: Claim }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private error: unknown;
  private rearmedSinceSettle = 0;

  constructor(private readonly options: AckBufferOptions) {}

  add(entry: AckEntry, claim: Claim): void {
    this.options.keeper.end(claim);
    this.entries.push({ entry, claim });
    if (this.entries.length >= this.options.batch) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), ACK_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Sends what is buffered, waits for every ack in flight; returns parents re-armed since the last settle. */
  async settle(): Promise<number> {
    this.flush();
    while (this.inflight.size > 0) await Promise.all(this.inflight);
    if (this.error !== undefined) {
      const error = this.error;
      this.error = undefined;
      throw error;
    }
    const rearmed = this.rearmedSinceSettle;
    this.rearmedSinceSettle = 0;
    return rearmed;
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.entries.length === 0) return;
    const batch = this.entries;
    this.entries = [];
    const { outcomes, clock, totals, logger, keeper } = this.options;
    const p = outcomes
      .ack(
        batch.map((b) => b.entry),
        clock.now(),
      )
      .then(
        ({ rearmed, superseded }) => {
          totals.rearmed += rearmed;
          this.rearmedSinceSettle += rearmed;
          if (superseded > 0) {
            totals.superseded += superseded;
            logger.warn(
              { superseded },
              'recomputes acknowledged after their lease passed on: each parent gets one more recompute, since a late write may have landed last',
            );
          }
        },
        (error: unknown) => {
          // The leases expire: the parents are recomputed again, never lost.
          logger.warn({ err: errorMessage(error), parents: batch.length }, 'acknowledgements failed; the leases will expire');
          this.error ??= error;
        },
      )
      .finally(() => {
        for (const b of batch) keeper.drop(b.claim);
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }
}
