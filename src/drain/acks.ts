import type { CoalesceLogger as Logger } from '../log';
import type { AckEntry, Store } from '../redis/store';
import type { DrainResult } from './drainer';

/**
 * Acknowledgements of recomputed parents, sent in batches without holding up the drain;
 * `settle()` waits for all of them (and reports how many parents came back to pending).
 */
export class AckBuffer {
  private entries: AckEntry[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private error: unknown;
  private rearmedSinceSettle = 0;

  constructor(
    private readonly store: Store,
    private readonly result: DrainResult,
    private readonly logger: Logger,
    private readonly batch: number,
    private readonly clock: () => number,
  ) {}

  add(entry: AckEntry): void {
    this.entries.push(entry);
    if (this.entries.length >= this.batch) this.flush();
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
    if (this.entries.length === 0) return;
    const entries = this.entries;
    this.entries = [];
    const p = this.store
      .ack(entries, this.clock())
      .then(
        ({ rearmed, lost }) => {
          this.result.rearmed += rearmed;
          this.rearmedSinceSettle += rearmed;
          if (lost > 0) this.logger.warn({ lost }, 'recomputed parents whose lease had expired and passed to another worker');
        },
        (error: unknown) => {
          // The leases stay and expire: the parents are recomputed again, never lost.
          this.error ??= error;
        },
      )
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }
}
