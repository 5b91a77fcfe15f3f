import type { QueryRunner } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { MarkEntry } from '../redis/records';
import type { ParentId, ParentType } from '../registry/model';
import type { Registry } from '../registry/registry';
import { errorMessage } from '../errors';
import { addMark, type Marker } from './marker';
import type { Outbox } from './outbox';
import type { Policies } from './policies';

/** What delivery needs. */
export interface DeliveryOptions {
  /** `'outbox'`: every mark is also written to the outbox, inside the host's transaction for the subscriber's. */
  readonly mode: 'redis' | 'outbox';
  readonly marker: Marker;
  readonly outbox: Outbox;
  readonly policies: Policies;
  readonly registry: Registry;
  readonly logger: Logger;
}

/**
 * The one place that decides how marks reach Redis and what keeps them when Redis does not take
 * them: sent after the commit, kept in the outbox when undelivered; with `delivery: 'outbox'`,
 * also written to the outbox first (inside the host's transaction), and recorded as sent once
 * Redis has them.
 */
export class Delivery {
  constructor(private readonly options: DeliveryOptions) {}

  /** Whether marks are written to the outbox before they are sent. */
  get strict(): boolean {
    return this.options.mode === 'outbox';
  }

  /**
   * Before the host's outermost COMMIT (strict delivery): the transaction's marks go into the
   * outbox inside it, so they commit with the change. Returns the rows' batch, or undefined
   * when delivery is not strict. A failure here fails the host's transaction, as it must.
   */
  async beforeCommit(entries: readonly MarkEntry[], runner: QueryRunner): Promise<string | undefined> {
    return this.strict ? this.options.outbox.write(entries, runner) : undefined;
  }

  /**
   * After the host's write is committed (or done, outside a transaction): sends the marks in the
   * background (or awaited with `awaitMarks`); `batch` names their outbox rows, written before
   * the commit. Never rejects.
   */
  afterCommit(entries: readonly MarkEntry[], batch?: string): Promise<void> {
    const { marker, outbox, logger } = this.options;
    return marker.dispatch(async () => {
      // Strict delivery: rows written in the transaction already keep these marks.
      const sent = await marker.send(entries, { keep: batch === undefined });
      if (!sent.delivered || batch === undefined) return;
      // Redis has the marks: their rows say so (and stay until the parents are recomputed, in
      // case Redis loses them). Left unrecorded, they are only sent twice.
      await outbox.sent(batch, sent.epoch, sent.generation).catch((error: unknown) => {
        logger.warn({ err: errorMessage(error), batch }, 'could not record delivered outbox rows; they will be relayed again');
      });
    });
  }

  /**
   * Marks parents of one type by id (`mark()`, chains, rebuilds, repairs); returns their members
   * (each once). A RegistrationError for an id of the wrong kind, before anything is sent.
   */
  async markIds(parent: ParentType, ids: ParentId | readonly ParentId[]): Promise<string[]> {
    const batch = new Map<string, MarkEntry>();
    for (const id of Array.isArray(ids) ? (ids as readonly unknown[]) : [ids]) {
      addMark(batch, { member: this.options.registry.encode(parent, id), increment: 1, base: parent.base });
    }
    await this.mark([...batch.values()]);
    return [...batch.keys()];
  }

  /**
   * Marks parents explicitly, through the main connection. Never throws for an unreachable
   * Redis: the marks go to the outbox.
   */
  async mark(entries: readonly MarkEntry[]): Promise<void> {
    const { marker, outbox, policies } = this.options;
    // Without the policies a settling type's marks would go straight to pending. A Redis that
    // cannot take them within markTimeoutMs will not take the marks either.
    const away = await policies.away();
    if (this.strict) {
      const written = await outbox.write(entries);
      if (away) return;
      const sent = await marker.send(entries, { keep: false, bulk: true });
      if (sent.delivered) await outbox.sent(written, sent.epoch, sent.generation).catch(() => undefined);
    } else if (away) {
      marker.keepOnly(entries, away);
    } else {
      await marker.send(entries, { bulk: true });
    }
  }

  /** Resolves when every mark started before the call (`idle`: every mark) has reached Redis or the outbox. */
  settled(until?: 'started' | 'idle'): Promise<void> {
    return this.options.marker.settled(until);
  }
}
