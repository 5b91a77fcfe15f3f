import type { CoalesceLogger as Logger } from '../log';
import type { MarkEntry, Store } from '../redis/store';
import { errorMessage } from '../errors';

/** Marks that could not be sent to Redis, handed to whatever keeps them (the outbox) or logged. */
export type UndeliveredHandler = (entries: readonly MarkEntry[], error: unknown) => Promise<void>;

/** Counters of what the marker sent. */
export interface MarkerStats {
  /** Parent marks sent (one per distinct parent per round trip). */
  marks: number;
  /** Round trips to Redis made by the marker. */
  roundTrips: number;
  /** Marks that could not be sent. */
  undelivered: number;
}

/** Adds `entry` to `batch`, summing the increments of the same member. */
export function addMark(batch: Map<string, MarkEntry>, entry: MarkEntry): void {
  const prev = batch.get(entry.member);
  batch.set(entry.member, prev ? { ...prev, increment: prev.increment + entry.increment } : entry);
}

/**
 * Sends marks to Redis in one round trip per batch. Never throws: the host's save already
 * committed, so a failure is handed to the undelivered handler instead.
 */
export class Marker {
  readonly stats: MarkerStats = { marks: 0, roundTrips: 0, undelivered: 0 };
  private undeliveredHandler: UndeliveredHandler;
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly clock: () => number,
    /** When false, the save path does not wait for Redis: sends run in the background. */
    private readonly awaitMarks = true,
    /**
     * False while the connection is known to be down (lost and reconnecting): marks then go
     * straight to the undelivered handler instead of waiting for the timeout in the offline queue.
     */
    private readonly reachable: () => boolean = () => true,
  ) {
    this.undeliveredHandler = async (entries, error) => {
      this.logger.error(
        { err: errorMessage(error), marks: entries.map((e) => `${e.member}+${e.increment}`) },
        'marks could not be sent to Redis; the parents will be stale until they are marked again',
      );
    };
  }

  /**
   * Runs a send for the save path: awaited when marks are awaited, else started at once and
   * tracked, so the host's save returns without a Redis round trip. Never rejects.
   */
  dispatch(send: () => Promise<unknown>): Promise<void> {
    const p = send().catch((error: unknown) => this.logger.error({ err: errorMessage(error) }, 'sending marks failed'));
    if (this.awaitMarks) return p.then(() => undefined);
    this.track(p);
    return Promise.resolve();
  }

  private track(p: Promise<unknown>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Resolves when every send started so far has ended: delivered, or kept by the undelivered handler (the outbox). */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Replaces what happens to marks Redis did not take (the outbox plugs in here). */
  onUndelivered(handler: UndeliveredHandler): void {
    this.undeliveredHandler = handler;
  }

  /**
   * Sends marks; true when Redis took them, false when it did not. Marks Redis did not take go
   * to the undelivered handler (unless `keep` is false: they are kept elsewhere already) in the
   * background, tracked by {@link settled}: the caller may hold a pooled connection (a save's
   * commit hook does) that keeping them needs, and waiting here would deadlock a full pool.
   */
  async send(entries: readonly MarkEntry[], { keep = true }: { keep?: boolean } = {}): Promise<boolean> {
    if (entries.length === 0) return true;
    try {
      if (!this.reachable()) throw new Error('the Redis connection is down (reconnecting)');
      this.stats.roundTrips += 1;
      await this.store.mark(entries, this.clock());
      this.stats.marks += entries.length;
      return true;
    } catch (error) {
      this.stats.undelivered += entries.length;
      if (keep) this.track(this.keep(entries, error));
      return false;
    }
  }

  private async keep(entries: readonly MarkEntry[], error: unknown): Promise<void> {
    try {
      await this.undeliveredHandler(entries, error);
    } catch (handlerError) {
      this.logger.error(
        { err: errorMessage(handlerError), cause: errorMessage(error), marks: entries.map((e) => e.member) },
        'marks could not be sent nor kept',
      );
    }
  }
}
