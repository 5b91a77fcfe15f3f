import type {
  EntityMetadata,
  EntitySubscriberInterface,
  InsertEvent,
  ObjectLiteral,
  QueryRunner,
  RemoveEvent,
  TransactionCommitEvent,
  TransactionRollbackEvent,
  UpdateEvent,
} from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { MarkEntry } from '../redis/store';
import { foreignKeyOf, type ChildLink, type Registry } from '../registry';
import { addMark, type Marker } from './marker';
import type { Outbox } from './outbox';

type Batch = Map<string, MarkEntry>;

/**
 * Sees every change of a registered child and marks its parents. Inside a transaction the
 * marks wait, one batch per savepoint level, until the outermost COMMIT (a rolled back level
 * is dropped); outside one they are sent at once.
 */
export class CaptureSubscriber implements EntitySubscriberInterface {
  // Keyed by QueryRunner, not kept in queryRunner.data: TypeORM replaces `data` in save({ data }).
  private readonly pending = new WeakMap<QueryRunner, Map<number, Batch>>();
  /** Outbox rows written inside a transaction (strict delivery), to delete once Redis has them. */
  private readonly written = new WeakMap<QueryRunner, string[]>();

  constructor(
    private readonly registry: Registry,
    private readonly marker: Marker,
    private readonly logger: Logger,
    private readonly strict: Outbox | undefined,
  ) {}

  /**
   * Strict delivery: the outermost transaction's marks go into the outbox inside it, so they
   * commit with the change. A failure here fails the host's transaction, as it must.
   */
  async beforeTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const qr = event.queryRunner;
    if (!this.strict || depthOf(qr) > 1) return;
    const levels = this.pending.get(qr);
    if (!levels) return;
    const ids = await this.strict.write(merged(levels), qr);
    this.written.set(qr, ids);
  }

  afterInsert(event: InsertEvent<ObjectLiteral>): Promise<void> {
    return this.capture(event.queryRunner, event.metadata, (link) => [foreignKeyOf(link, event.entity)]);
  }

  afterUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> {
    return this.capture(event.queryRunner, event.metadata, (link) => {
      const before = foreignKeyOf(link, event.databaseEntity);
      // A partial save leaves the key unset on the entity while the row still holds it:
      // the entity's key is news only when TypeORM says the column changed.
      const changed =
        event.updatedColumns.includes(link.column) ||
        (link.relation !== undefined && event.updatedRelations.includes(link.relation));
      const after = changed || event.databaseEntity === undefined ? foreignKeyOf(link, event.entity) : undefined;
      return [before, after];
    });
  }

  afterRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> {
    return this.captureRemoval(event);
  }

  afterSoftRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> {
    return this.captureRemoval(event);
  }

  afterRecover(event: RemoveEvent<ObjectLiteral>): Promise<void> {
    return this.captureRemoval(event);
  }

  afterTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const qr = event.queryRunner;
    const levels = this.pending.get(qr);
    if (!levels) return Promise.resolve();
    const depth = depthOf(qr);
    if (qr.isTransactionActive && depth > 0) {
      // RELEASE SAVEPOINT: the inner level's marks now belong to the enclosing level.
      const inner = levels.get(depth + 1);
      levels.delete(depth + 1);
      if (inner) {
        const outer = levels.get(depth) ?? new Map<string, MarkEntry>();
        for (const entry of inner.values()) addMark(outer, entry);
        levels.set(depth, outer);
      }
      return Promise.resolve();
    }
    this.pending.delete(qr);
    const ids = this.written.get(qr);
    this.written.delete(qr);
    return this.marker.dispatch(() => this.flush(merged(levels), ids));
  }

  private async flush(entries: MarkEntry[], outboxIds: string[] | undefined): Promise<void> {
    // Strict delivery: rows written in the transaction already keep these marks.
    const delivered = await this.marker.send(entries, { keep: outboxIds === undefined });
    if (!delivered || !outboxIds || !this.strict) return;
    // Redis has the marks: their outbox rows are done. Left behind, they are only sent twice.
    await this.strict.remove(outboxIds).catch((error: unknown) => {
      this.logger.warn(
        { err: String(error), rows: outboxIds.length },
        'could not delete delivered outbox rows; they will be relayed again',
      );
    });
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    const qr = event.queryRunner;
    const levels = this.pending.get(qr);
    if (!levels) return;
    const depth = qr.isTransactionActive ? depthOf(qr) : 0;
    for (const level of [...levels.keys()]) if (level > depth) levels.delete(level);
    if (levels.size === 0) this.pending.delete(qr);
    if (depth === 0) this.written.delete(qr);
  }

  private captureRemoval(event: RemoveEvent<ObjectLiteral>): Promise<void> {
    // After remove() the entity has lost its primary key but the database entity holds the row.
    return this.capture(event.queryRunner, event.metadata, (link) => [
      foreignKeyOf(link, event.databaseEntity) ?? foreignKeyOf(link, event.entity),
    ]);
  }

  private capture(qr: QueryRunner, metadata: EntityMetadata, parentIds: (link: ChildLink) => unknown[]): Promise<void> {
    const links = this.registry.linksOf(metadata);
    if (links.length === 0) return Promise.resolve();
    const batch: Batch = new Map();
    for (const link of links) {
      for (const id of new Set(parentIds(link))) {
        if (id === undefined || id === null) continue;
        try {
          addMark(batch, { member: this.registry.encode(link.parent, id), increment: 1, base: link.parent.base });
        } catch (err) {
          this.logger.warn({ child: metadata.name, parent: link.parent.name, id }, String(err));
        }
      }
    }
    if (batch.size === 0) {
      this.logger.debug({ child: metadata.name }, 'child change with no resolvable parent; use mark() on bulk paths');
      return Promise.resolve();
    }
    if (!qr.isTransactionActive) return this.marker.dispatch(() => this.marker.send([...batch.values()]));
    let levels = this.pending.get(qr);
    if (!levels) {
      levels = new Map();
      this.pending.set(qr, levels);
    }
    const depth = Math.max(depthOf(qr), 1);
    const level = levels.get(depth) ?? new Map<string, MarkEntry>();
    for (const entry of batch.values()) addMark(level, entry);
    levels.set(depth, level);
    return Promise.resolve();
  }
}

/** Every level's marks, summed per member. */
function merged(levels: Map<number, Batch>): MarkEntry[] {
  const all: Batch = new Map();
  for (const level of levels.values()) for (const entry of level.values()) addMark(all, entry);
  return [...all.values()];
}

/** Savepoint depth of a query runner (TypeORM keeps it protected); 1 inside a plain transaction. */
function depthOf(qr: QueryRunner): number {
  const depth = (qr as unknown as { transactionDepth?: unknown }).transactionDepth;
  if (typeof depth === 'number') return depth;
  return qr.isTransactionActive ? 1 : 0;
}
