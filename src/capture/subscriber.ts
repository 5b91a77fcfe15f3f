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
import type { MarkEntry } from '../redis/records';
import type { Registry } from '../registry/registry';
import type { Delivery } from '../delivery/delivery';
import { addMark } from '../delivery/marker';
import type { AfterQuery, BeforeQuery } from '../typeorm-types';
import { isRecomputing } from '../recompute-scope';
import { derivedWritten, type DerivedWrite } from './derived';
import { isLookup, LookupSql } from './lookup-sql';
import { Lookups, type Found } from './lookups';
import { Resolver, type WriteEvent, type WriteKind } from './resolver';
import { isUpsert } from './sql-upsert';
import { OnceLog } from './once-log';

type Batch = Map<string, MarkEntry>;

/**
 * Sees every change of a registered child and marks its parents, old and new. Inside a
 * transaction the marks wait, one batch per savepoint level, until the outermost COMMIT (a
 * rolled back level is dropped); outside one they are sent once the write is done. Keys an
 * event does not carry are read through the event's query runner, batched (see Resolver).
 */
export class CaptureSubscriber implements EntitySubscriberInterface {
  // Keyed by QueryRunner, not kept in queryRunner.data: TypeORM replaces `data` in save({ data }).
  private readonly pending = new WeakMap<QueryRunner, Map<number, Batch>>();
  /** The outbox batch written inside a transaction (strict delivery), to record as sent once Redis has it. */
  private readonly written = new WeakMap<QueryRunner, string>();
  /**
   * Marks found outside a transaction, held until the write is done: a parent marked before
   * its child's statement ran could be recomputed before the change.
   */
  private readonly held = new WeakMap<QueryRunner, Batch>();
  private readonly resolver: Resolver;
  private readonly sql = new LookupSql();
  private readonly once: OnceLog;

  constructor(
    private readonly registry: Registry,
    private readonly delivery: Delivery,
    private readonly logger: Logger,
  ) {
    this.once = new OnceLog(logger);
    const sink = (qr: QueryRunner, found: readonly Found[]): void => this.collect(qr, found);
    const unresolved = (metadata: EntityMetadata, site: string, reason: string): void => this.unresolved(metadata, site, reason);
    this.resolver = new Resolver(registry, new Lookups(this.sql, sink, unresolved), sink, unresolved);
  }

  /**
   * Strict delivery: the outermost transaction's marks go into the outbox inside it, so they
   * commit with the change. A failure here fails the host's transaction, as it must.
   */
  async beforeTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const qr = event.queryRunner;
    if (!this.delivery.strict || depthOf(qr) > 1) return;
    const levels = this.pending.get(qr);
    if (!levels) return;
    const batch = await this.delivery.beforeCommit(merged(levels), qr);
    if (batch !== undefined) this.written.set(qr, batch);
  }

  beforeUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.resolver.before(this.write('update', event));
  }

  beforeRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.resolver.before(this.write('remove', event));
  }

  beforeSoftRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.resolver.before(this.write('soft-remove', event));
  }

  beforeRecover(event: RemoveEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.resolver.before(this.write('recover', event));
  }

  afterInsert(event: InsertEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.after(this.write('insert', event));
  }

  afterUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> | void {
    const host = derivedWritten(this.registry, event.metadata, event.updatedColumns, event.entity, event.databaseEntity);
    if (host && !isRecomputing()) {
      this.warnDerived(event.queryRunner, host);
      if (!this.resolver.concerns(event.metadata)) return this.after(undefined, event.queryRunner);
    }
    if (this.resolver.concerns(event.metadata)) return this.after(this.write('update', event));
  }

  afterRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.after(this.write('remove', event));
  }

  afterSoftRemove(event: RemoveEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.after(this.write('soft-remove', event));
  }

  afterRecover(event: RemoveEvent<ObjectLiteral>): Promise<void> | void {
    if (this.resolver.concerns(event.metadata)) return this.after(this.write('recover', event));
  }

  /**
   * Rows an event does not name are read just before their statement runs. A statement waits
   * while a lookup's savepoint is open on its query runner (see LookupSql). A lookup error that
   * ended the host's transaction rejects here: TypeORM then fails the statement with it.
   */
  beforeQuery(event: BeforeQuery): Promise<void> | void {
    const { queryRunner: qr, query, parameters } = event;
    const held = this.sql.hold(qr, query);
    if (held) return held.then(() => this.resolver.beforeQuery(qr, query, parameters));
    return this.resolver.beforeQuery(qr, query, parameters);
  }

  /**
   * A failed statement ends its watches; outside a transaction, marks already found leave now,
   * and after an upsert (whose insert events a host may turn off).
   */
  afterQuery(event: AfterQuery): Promise<void> | void {
    const qr = event.queryRunner;
    this.sql.seen(qr, event.query);
    if (isLookup(event.query) || qr.isTransactionActive) return undefined;
    if (event.success) return isUpsert(event.query) ? this.release(qr) : undefined;
    this.resolver.forget(qr);
    return this.release(qr);
  }

  afterTransactionCommit(event: TransactionCommitEvent): Promise<void> {
    const qr = event.queryRunner;
    if (!qr.isTransactionActive) this.resolver.forget(qr);
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
    const batch = this.written.get(qr);
    this.written.delete(qr);
    return this.delivery.afterCommit(merged(levels), batch);
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    const qr = event.queryRunner;
    if (!qr.isTransactionActive) this.resolver.forget(qr);
    const levels = this.pending.get(qr);
    if (!levels) return;
    const depth = qr.isTransactionActive ? depthOf(qr) : 0;
    for (const level of [...levels.keys()]) if (level > depth) levels.delete(level);
    if (levels.size === 0) this.pending.delete(qr);
    if (depth === 0) this.written.delete(qr);
  }

  private write(
    kind: WriteKind,
    event: InsertEvent<ObjectLiteral> | UpdateEvent<ObjectLiteral> | RemoveEvent<ObjectLiteral>,
  ): WriteEvent {
    return {
      kind,
      queryRunner: event.queryRunner,
      metadata: event.metadata,
      entity: event.entity ?? undefined,
      databaseEntity: 'databaseEntity' in event ? (event.databaseEntity ?? undefined) : undefined,
      entityId: 'entityId' in event ? (event.entityId as unknown) : undefined,
    };
  }

  /** After a write: resolve its parents, then (outside a transaction) send what was found. */
  private async after(e: WriteEvent | undefined, qr = e?.queryRunner): Promise<void> {
    if (e) await this.resolver.after(e);
    if (qr && !qr.isTransactionActive) await this.release(qr);
  }

  /** Adds found parents to the transaction's current level, or holds them until the write is done. */
  private collect(qr: QueryRunner, found: readonly Found[]): void {
    if (found.length === 0) return;
    const batch: Batch = new Map();
    for (const { parent, id } of found) {
      try {
        addMark(batch, { member: this.registry.encode(parent, id), increment: 1, base: parent.base });
      } catch (err) {
        this.logger.warn({ parent: parent.name, id }, String(err));
      }
    }
    if (!qr.isTransactionActive) {
      const held = this.held.get(qr) ?? new Map<string, MarkEntry>();
      for (const entry of batch.values()) addMark(held, entry);
      this.held.set(qr, held);
      return;
    }
    let levels = this.pending.get(qr);
    if (!levels) {
      levels = new Map();
      this.pending.set(qr, levels);
    }
    const depth = Math.max(depthOf(qr), 1);
    const level = levels.get(depth) ?? new Map<string, MarkEntry>();
    for (const entry of batch.values()) addMark(level, entry);
    levels.set(depth, level);
  }

  /** Sends the marks held outside a transaction, in one round trip. */
  private release(qr: QueryRunner): Promise<void> {
    const held = this.held.get(qr);
    if (!held || held.size === 0) return Promise.resolve();
    this.held.delete(qr);
    return this.delivery.afterCommit([...held.values()]);
  }

  /** A child change whose parents stay unknown: said once per (entity, site), with what to do. */
  private unresolved(metadata: EntityMetadata, site: string, reason: string): void {
    const links = [...this.registry.linksOf(metadata), ...this.registry.junctionLinksOf(metadata)];
    const parents = [...new Set(links.map((l) => l.parent.name))];
    const entity = metadata.name;
    this.once.warn(
      `unresolved:${entity}:${site}`,
      { child: entity, site, parents },
      `${entity}: a change (${site}) was made whose parent could not be found: ${reason}. ` +
        `It is not marked: call coalescer.mark(${parents[0] ?? 'Parent'}, ids) after this kind of write, ` +
        'or make it through save() / remove() so the subscriber sees the row (this warning is given once per entity and site)',
    );
  }

  /** A host save() wrote derived columns: warn once per column, and mark the parent again. */
  private warnDerived(qr: QueryRunner, write: DerivedWrite): void {
    const { parent, columns, id } = write;
    const member = id === undefined ? parent.name : `${parent.name}:${String(id)}`;
    for (const column of columns) {
      this.once.warn(
        `derived:${parent.name}:${column.propertyPath}`,
        { parent: parent.name, column: column.propertyPath, id },
        `${parent.name}.${column.propertyPath} is derived (its recompute writes it), but a save() of ${member} outside any ` +
          'recompute wrote it: a copy loaded before the last recompute, saved back, overwrites the newer value. ' +
          `${member} is marked again so one more recompute heals it; to stop the write-back, reload the entity before ` +
          'saving it, or write only the columns you changed (repository.update(id, { name }), or save({ id, name })) ' +
          '(this warning is given once per column)',
      );
    }
    if (id !== undefined && id !== null) this.collect(qr, [{ parent, id }]);
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
