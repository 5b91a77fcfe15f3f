import { dataSourceOf } from '../typeorm-types';
import type { EntityMetadata, ObjectLiteral, QueryRunner } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import { errorMessage } from '../errors';
import type { ForeignKeyLink, JunctionLink } from '../registry/links';
import type { ParentType } from '../registry/model';
import { isPostgres, lockClause, TAG, type Intent, type LookupSql } from './lookup-sql';
import { selectRows, type WriteStatement } from './sql-select';
import type { UpsertStatement } from './sql-upsert';
import { conflictFilter } from './upsert-conflicts';

/** A parent of a changed child, one per child row (or join row) that names it. */
export interface Found {
  readonly parent: ParentType;
  readonly id: unknown;
}

/** Where found parents go: the subscriber buffers them in the transaction, or holds them until the write is done. */
export type Sink = (qr: QueryRunner, found: readonly Found[]) => void;

/** Told when a lookup fails: the changed rows' parents stay unknown. */
export type Unresolved = (metadata: EntityMetadata, site: string, reason: string) => void;

/** What a statement lookup reads besides the parents: the primary keys of the rows it picks. */
export interface StatementTargets {
  readonly metadata: EntityMetadata;
  readonly foreignKeys: readonly ForeignKeyLink[];
  readonly junctionParents: readonly JunctionLink[];
  readonly viaChildren: readonly JunctionLink[];
  readonly wantIds: boolean;
  readonly site: string;
}

/** Most keys in one `IN (...)` list: bounded statements, still one round trip for a usual save. */
const CHUNK = 1000;

interface RowRequest {
  readonly id: ObjectLiteral;
  readonly links: Set<ForeignKeyLink>;
  /** Members already counted for this row by its event (`"<Type>:<id>"`): not counted twice. */
  readonly skip: Set<string>;
}

interface RowBatch {
  readonly kind: 'rows';
  readonly metadata: EntityMetadata;
  readonly site: string;
  readonly intent: Intent;
  readonly requests: Map<string, RowRequest>;
}

interface JunctionBatch {
  readonly kind: 'junction';
  readonly link: JunctionLink;
  readonly site: string;
  readonly intent: Intent;
  readonly ids: Map<string, unknown>;
}

interface Round {
  readonly batches: Map<string, RowBatch | JunctionBatch>;
  done: Promise<void>;
}

/** Member-like key of a parent id, to skip parents already counted. */
export function memberKey(parent: ParentType, id: unknown): string {
  return `${parent.name}:${String(id)}`;
}

/**
 * Reads, in the host's transaction and through its query runner, the keys that events do not
 * carry. Requests made in one synchronous turn (TypeORM broadcasts one event per subject in a
 * single loop) are joined into one SELECT per table; rounds on one query runner run one after
 * the other (a PostgreSQL client takes one query at a time). A failed lookup is reported as
 * unresolved, unless it ended the host's transaction: then the returned promise rejects with
 * it, and the host's write fails as its own statement would have (see LookupSql).
 */
export class Lookups {
  private readonly open = new WeakMap<QueryRunner, Round>();
  private readonly tail = new WeakMap<QueryRunner, Promise<void>>();

  constructor(
    private readonly sql: LookupSql,
    private readonly sink: Sink,
    private readonly unresolved: Unresolved,
  ) {}

  /**
   * Looks up the foreign keys of `links` in the child row whose primary key map is `id`, before
   * the host's statement does `intent` to it (`none`: after its statement).
   */
  rows(
    qr: QueryRunner,
    metadata: EntityMetadata,
    id: ObjectLiteral,
    links: readonly ForeignKeyLink[],
    skip: readonly string[],
    intent: Intent,
    site: string,
  ): Promise<void> {
    return this.join(qr, (round) => {
      const key = `rows:${intent}:${metadata.tablePath}`;
      let batch = round.batches.get(key) as RowBatch | undefined;
      if (!batch) {
        batch = { kind: 'rows', metadata, site, intent, requests: new Map() };
        round.batches.set(key, batch);
      }
      const idKey = JSON.stringify(metadata.primaryColumns.map((c) => c.getEntityValue(id)));
      const request = batch.requests.get(idKey) ?? { id, links: new Set(), skip: new Set() };
      for (const link of links) request.links.add(link);
      for (const member of skip) request.skip.add(member);
      batch.requests.set(idKey, request);
    });
  }

  /**
   * Looks up the parents linked to the children `ids` in `link`'s join table; `delete` when the
   * host's next statement deletes those join rows (the children's remove).
   */
  junction(qr: QueryRunner, link: JunctionLink, ids: readonly unknown[], intent: Intent, site: string): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.join(qr, (round) => {
      const key = `junction:${intent}:${link.junction.tablePath}:${link.parentColumn.databaseName}`;
      let batch = round.batches.get(key) as JunctionBatch | undefined;
      if (!batch) {
        batch = { kind: 'junction', link, site, intent, ids: new Map() };
        round.batches.set(key, batch);
      }
      for (const id of ids) batch.ids.set(JSON.stringify(id), id);
    });
  }

  /**
   * Reads the rows `statement` is about to write, before it runs: their parents (to the sink)
   * and, when asked, their primary keys (returned, to read the rows again after the statement).
   * Inside a transaction the rows are locked as the statement locks them, with its own WHERE.
   */
  async statement(
    qr: QueryRunner,
    statement: WriteStatement,
    targets: StatementTargets,
    intent: Intent = statement.verb === 'DELETE' ? 'delete' : 'update',
  ): Promise<ObjectLiteral[]> {
    const { metadata } = targets;
    const driver = dataSourceOf(qr).driver;
    const columns: string[] = [];
    const alias = (column: ColumnMetadata, name: string): string => {
      columns.push(`${driver.escape(column.databaseName)} AS ${driver.escape(name)}`);
      return name;
    };
    const fks = targets.foreignKeys.map((link, i) => ({ link, as: alias(link.column, `f${i}`) }));
    const jps = targets.junctionParents.map((link, i) => ({ link, as: alias(link.parentColumn, `j${i}`) }));
    const needIds = targets.wantIds || targets.viaChildren.length > 0;
    const pks = needIds && !metadata.isJunction ? metadata.primaryColumns.map((c, i) => ({ c, as: alias(c, `k${i}`) })) : [];
    // The rows the statement's own WHERE picks, locked as the statement will lock them.
    const sql = selectRows(statement, columns, lockClause(qr, intent));
    let rows: ObjectLiteral[];
    try {
      rows = await this.sql.run(qr, sql, statement.parameters);
    } catch (error) {
      this.failed(qr, error, metadata, targets.site, 'the lookup of the rows it writes failed');
      return [];
    }
    const found: Found[] = [];
    for (const row of rows) {
      for (const { link, as } of [...fks, ...jps]) {
        const value: unknown = row[as];
        if (value !== null && value !== undefined) found.push({ parent: link.parent, id: value });
      }
    }
    this.sink(qr, found);
    const ids =
      pks.length === 0
        ? []
        : rows.map((row) =>
            idMapOf(
              metadata,
              pks.map(({ c, as }) => [c, row[as]]),
            ),
          );
    if (targets.viaChildren.length > 0 && ids.length > 0) {
      const single = metadata.primaryColumns.length === 1 ? metadata.primaryColumns[0] : undefined;
      const childIds = single ? ids.map((id) => single.getEntityValue(id)) : [];
      // A DELETE removes the children's join rows with them (TypeORM, or ON DELETE CASCADE); an UPDATE leaves them.
      const via: Intent = intent === 'delete' ? 'delete' : 'none';
      for (const link of targets.viaChildren) {
        await this.runJunction(qr, { kind: 'junction', link, site: targets.site, intent: via, ids: keyed(childIds) });
      }
    }
    return ids;
  }

  /**
   * Reads, before an upsert runs, the existing rows it conflicts with (those it updates): their
   * parents are the ones it may move them from. The new parents come from its insert events.
   */
  async upsert(qr: QueryRunner, statement: UpsertStatement, targets: StatementTargets): Promise<void> {
    const { metadata, site } = targets;
    const driver = dataSourceOf(qr).driver;
    const filter = conflictFilter(metadata, statement, {
      escape: (name) => driver.escape(name),
      param: (n) => driver.createParameter(`p${n}`, n - 1),
    });
    if (typeof filter === 'string') {
      this.unresolved(metadata, site, `the rows it updates, and so the parents it moves them from, cannot be told: ${filter}`);
      return;
    }
    if (!filter) return;
    const { table, tablePath } = statement;
    const rows: WriteStatement = {
      verb: 'UPDATE',
      table,
      tablePath,
      filter: `WHERE ${filter.where}`,
      parameters: filter.parameters,
    };
    // The upsert locks the rows it updates: on PostgreSQL they are read with that lock.
    if (!qr.isTransactionActive || isPostgres(qr)) {
      await this.statement(qr, rows, targets);
      return;
    }
    // On MySQL a locking read of a key that no row holds locks the gap where it would go, which
    // the upsert's own insert does not: the rows that exist are found first, then locked by
    // primary key (and their keys read again, as committed).
    const ids = await this.statement(
      qr,
      rows,
      { ...targets, foreignKeys: [], junctionParents: [], viaChildren: [], wantIds: true },
      'none',
    );
    if (ids.length === 0) return;
    const links = new Set(targets.foreignKeys);
    const requests = new Map(ids.map((id, i) => [String(i), { id, links, skip: new Set<string>() }]));
    if (links.size > 0) await this.runRows(qr, { kind: 'rows', metadata, site, intent: 'update', requests });
    const single = metadata.primaryColumns.length === 1 ? metadata.primaryColumns[0] : undefined;
    const childIds = single ? ids.map((id) => single.getEntityValue(id)) : [];
    for (const link of targets.viaChildren) {
      await this.runJunction(qr, { kind: 'junction', link, site, intent: 'none', ids: keyed(childIds) });
    }
  }

  /**
   * A failed lookup: rethrown when it ended the host's transaction (its write must fail with it),
   * else reported as unresolved.
   */
  private failed(qr: QueryRunner, error: unknown, metadata: EntityMetadata, site: string, what: string): void {
    if (this.sql.failsHost(qr, error)) throw error;
    this.unresolved(metadata, site, `${what}: ${errorMessage(error)}`);
  }

  private join(qr: QueryRunner, add: (round: Round) => void): Promise<void> {
    let round = this.open.get(qr);
    if (!round) {
      const fresh: Round = { batches: new Map(), done: Promise.resolve() };
      const previous = this.tail.get(qr) ?? Promise.resolve();
      // Runs once the current synchronous turn has added its requests (and after the round before it).
      fresh.done = previous.then(() => {
        if (this.open.get(qr) === fresh) this.open.delete(qr);
        return this.run(qr, fresh);
      });
      this.open.set(qr, fresh);
      // A round that failed the host's write does not stop the next one (a query runner outlives its transaction).
      this.tail.set(
        qr,
        fresh.done.catch(() => undefined),
      );
      round = fresh;
    }
    add(round);
    return round.done;
  }

  private async run(qr: QueryRunner, round: Round): Promise<void> {
    for (const batch of round.batches.values()) {
      const metadata = batch.kind === 'rows' ? batch.metadata : batch.link.child;
      try {
        if (batch.kind === 'rows') await this.runRows(qr, batch);
        else await this.runJunction(qr, batch);
      } catch (error) {
        this.failed(qr, error, metadata, batch.site, 'the lookup failed');
      }
    }
  }

  private async runRows(qr: QueryRunner, batch: RowBatch): Promise<void> {
    const { metadata } = batch;
    const driver = dataSourceOf(qr).driver;
    const links = [...new Set([...batch.requests.values()].flatMap((r) => [...r.links]))];
    const pks = metadata.primaryColumns;
    const select = [
      ...pks.map((c, i) => `${driver.escape(c.databaseName)} AS ${driver.escape(`k${i}`)}`),
      ...links.map((l, i) => `${driver.escape(l.column.databaseName)} AS ${driver.escape(`f${i}`)}`),
    ].join(', ');
    const requests = [...batch.requests.values()];
    const found: Found[] = [];
    for (let at = 0; at < requests.length; at += CHUNK) {
      const chunk = requests.slice(at, at + CHUNK);
      const parameters: unknown[] = [];
      const param = (column: ColumnMetadata, value: unknown): string => {
        parameters.push(driver.preparePersistentValue(value, column));
        return driver.createParameter(`p${parameters.length}`, parameters.length - 1);
      };
      const where =
        pks.length === 1 && pks[0]
          ? `${driver.escape(pks[0].databaseName)} IN (${chunk.map((r) => param(pks[0] as ColumnMetadata, pks[0]?.getEntityValue(r.id))).join(', ')})`
          : chunk
              .map(
                (r) =>
                  `(${pks.map((c) => `${driver.escape(c.databaseName)} = ${param(c, c.getEntityValue(r.id))}`).join(' AND ')})`,
              )
              .join(' OR ');
      // The rows the host's UPDATE or DELETE by primary key writes next, locked as it will lock them.
      const lock = lockClause(qr, batch.intent);
      const sql = `SELECT ${TAG} ${select} FROM ${escapePath(qr, metadata.tablePath)} WHERE ${where}${lock ? ` ${lock}` : ''}`;
      let rows: ObjectLiteral[];
      try {
        rows = await this.sql.run(qr, sql, parameters);
      } catch (error) {
        this.failed(qr, error, metadata, batch.site, 'the lookup of its foreign keys failed');
        continue;
      }
      const byId = new Map(chunk.map((r) => [JSON.stringify(pks.map((c) => String(c.getEntityValue(r.id)))), r]));
      for (const row of rows) {
        const request = byId.get(JSON.stringify(pks.map((_c, i) => String(row[`k${i}`]))));
        if (!request) continue;
        links.forEach((link, i) => {
          const value: unknown = row[`f${i}`];
          if (!request.links.has(link) || value === null || value === undefined) return;
          if (request.skip.has(memberKey(link.parent, value))) return;
          found.push({ parent: link.parent, id: value });
        });
      }
    }
    this.sink(qr, found);
  }

  private async runJunction(qr: QueryRunner, batch: JunctionBatch): Promise<void> {
    const { link } = batch;
    const driver = dataSourceOf(qr).driver;
    const ids = [...batch.ids.values()];
    const found: Found[] = [];
    for (let at = 0; at < ids.length; at += CHUNK) {
      const chunk = ids.slice(at, at + CHUNK);
      const list = chunk.map((_id, i) => driver.createParameter(`p${i}`, i)).join(', ');
      // Before a child's remove: the join rows its DELETE removes next (by TypeORM, or ON DELETE CASCADE).
      const lock = lockClause(qr, batch.intent);
      const sql =
        `SELECT ${TAG} ${driver.escape(link.parentColumn.databaseName)} AS ${driver.escape('p')} ` +
        `FROM ${escapePath(qr, link.junction.tablePath)} WHERE ${driver.escape(link.childColumn.databaseName)} IN (${list})` +
        (lock ? ` ${lock}` : '');
      try {
        const rows = await this.sql.run(qr, sql, chunk);
        for (const row of rows) if (row.p !== null && row.p !== undefined) found.push({ parent: link.parent, id: row.p });
      } catch (error) {
        this.failed(qr, error, link.child, batch.site, `the lookup of its ${link.parent.name} links failed`);
      }
    }
    this.sink(qr, found);
  }
}

/** A primary key map of `metadata` from column values. */
export function idMapOf(metadata: EntityMetadata, values: [ColumnMetadata, unknown][]): ObjectLiteral {
  const map: ObjectLiteral = {};
  for (const [column, value] of values) Object.assign(map, column.createValueMap(value));
  return metadata.getEntityIdMap(map) ?? map;
}

function keyed(values: readonly unknown[]): Map<string, unknown> {
  return new Map(values.map((v) => [JSON.stringify(v), v]));
}

/** A table path escaped the way TypeORM's own statements write it. */
function escapePath(qr: QueryRunner, tablePath: string): string {
  const driver = dataSourceOf(qr).driver;
  return tablePath
    .split('.')
    .map((part) => (part === '' ? part : driver.escape(part)))
    .join('.');
}
