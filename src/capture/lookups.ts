import { dataSourceOf } from '../typeorm-types';
import type { EntityMetadata, ObjectLiteral, QueryRunner } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import { errorMessage } from '../errors';
import type { ForeignKeyLink, JunctionLink } from '../links';
import type { ParentType } from '../registry';
import { selectRows, type WriteStatement } from './sql-select';

/** A parent of a changed child, one per child row (or join row) that names it. */
export interface Found {
  readonly parent: ParentType;
  readonly id: unknown;
}

/** `before`: the rows as they were before the statement runs; `after`: as it left them. */
export type Phase = 'before' | 'after';

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
const TAG = '/* typeorm-coalesce lookup */';
const SAVEPOINT = 'typeorm_coalesce_lookup';

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
  readonly phase: Phase;
  readonly requests: Map<string, RowRequest>;
}

interface JunctionBatch {
  readonly kind: 'junction';
  readonly link: JunctionLink;
  readonly site: string;
  readonly phase: Phase;
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
 * the other (a PostgreSQL client takes one query at a time). Never throws: a failed lookup is
 * reported as unresolved.
 */
export class Lookups {
  private readonly open = new WeakMap<QueryRunner, Round>();
  private readonly tail = new WeakMap<QueryRunner, Promise<void>>();

  constructor(
    private readonly sink: Sink,
    private readonly unresolved: Unresolved,
  ) {}

  /**
   * True for a statement of a lookup (a tagged SELECT, or its savepoint). Told by its text: on
   * MySQL, TypeORM runs a save's statements concurrently on one query runner, so "a lookup is
   * running on this query runner" does not make a statement a lookup's.
   */
  static isLookup(sql: string): boolean {
    return sql.includes(TAG) || sql.includes(SAVEPOINT);
  }

  /** Looks up the foreign keys of `links` in the child row whose primary key map is `id`. */
  rows(
    qr: QueryRunner,
    metadata: EntityMetadata,
    id: ObjectLiteral,
    links: readonly ForeignKeyLink[],
    skip: readonly string[],
    phase: Phase,
    site: string,
  ): Promise<void> {
    return this.join(qr, (round) => {
      const key = `rows:${phase}:${metadata.tablePath}`;
      let batch = round.batches.get(key) as RowBatch | undefined;
      if (!batch) {
        batch = { kind: 'rows', metadata, site, phase, requests: new Map() };
        round.batches.set(key, batch);
      }
      const idKey = JSON.stringify(metadata.primaryColumns.map((c) => c.getEntityValue(id)));
      const request = batch.requests.get(idKey) ?? { id, links: new Set(), skip: new Set() };
      for (const link of links) request.links.add(link);
      for (const member of skip) request.skip.add(member);
      batch.requests.set(idKey, request);
    });
  }

  /** Looks up the parents linked to the children `ids` in `link`'s join table. */
  junction(qr: QueryRunner, link: JunctionLink, ids: readonly unknown[], phase: Phase, site: string): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    return this.join(qr, (round) => {
      const key = `junction:${phase}:${link.junction.tablePath}:${link.parentColumn.databaseName}`;
      let batch = round.batches.get(key) as JunctionBatch | undefined;
      if (!batch) {
        batch = { kind: 'junction', link, site, phase, ids: new Map() };
        round.batches.set(key, batch);
      }
      for (const id of ids) batch.ids.set(JSON.stringify(id), id);
    });
  }

  /**
   * Reads the rows `statement` is about to write, before it runs: their parents (to the sink)
   * and, when asked, their primary keys (returned, to read the rows again after the statement).
   * Inside a transaction the rows are locked (FOR UPDATE), so the statement writes the rows that
   * were read. On PostgreSQL the SELECT then runs in a savepoint: it is derived from the host's
   * statement rather than built by TypeORM, and a failed statement would abort the host's
   * transaction.
   */
  async statement(qr: QueryRunner, statement: WriteStatement, targets: StatementTargets): Promise<ObjectLiteral[]> {
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
    const guarded = qr.isTransactionActive && isPostgres(qr);
    const sql = selectRows(statement, columns, qr.isTransactionActive);
    let rows: ObjectLiteral[];
    try {
      rows = await (async () => {
        if (!guarded) return (await qr.query(sql, [...statement.parameters])) as ObjectLiteral[];
        await qr.query(`SAVEPOINT ${SAVEPOINT}`);
        try {
          const result = (await qr.query(sql, [...statement.parameters])) as ObjectLiteral[];
          await qr.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
          return result;
        } catch (error) {
          await qr.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
          throw error;
        }
      })();
    } catch (error) {
      this.unresolved(metadata, targets.site, `the lookup of the rows it writes failed: ${errorMessage(error)}`);
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
      for (const link of targets.viaChildren) {
        await this.runJunction(qr, { kind: 'junction', link, site: targets.site, phase: 'before', ids: keyed(childIds) });
      }
    }
    return ids;
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
      this.tail.set(qr, fresh.done);
      round = fresh;
    }
    add(round);
    return round.done;
  }

  private async run(qr: QueryRunner, round: Round): Promise<void> {
    for (const batch of round.batches.values()) {
      try {
        if (batch.kind === 'rows') await this.runRows(qr, batch);
        else await this.runJunction(qr, batch);
      } catch (error) {
        // Never into the host's save: its parents are reported as unresolved instead.
        const metadata = batch.kind === 'rows' ? batch.metadata : batch.link.child;
        this.unresolved(metadata, batch.site, `the lookup failed: ${errorMessage(error)}`);
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
      const lock = batch.phase === 'before' && qr.isTransactionActive ? ' FOR UPDATE' : '';
      const sql = `SELECT ${TAG} ${select} FROM ${escapePath(qr, metadata.tablePath)} WHERE ${where}${lock}`;
      let rows: ObjectLiteral[];
      try {
        rows = (await qr.query(sql, parameters)) as ObjectLiteral[];
      } catch (error) {
        this.unresolved(metadata, batch.site, `the lookup of its foreign keys failed: ${errorMessage(error)}`);
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
      const lock = batch.phase === 'before' && qr.isTransactionActive ? ' FOR UPDATE' : '';
      const sql =
        `SELECT ${TAG} ${driver.escape(link.parentColumn.databaseName)} AS ${driver.escape('p')} ` +
        `FROM ${escapePath(qr, link.junction.tablePath)} WHERE ${driver.escape(link.childColumn.databaseName)} IN (${list})${lock}`;
      try {
        const rows = (await qr.query(sql, chunk)) as ObjectLiteral[];
        for (const row of rows) if (row.p !== null && row.p !== undefined) found.push({ parent: link.parent, id: row.p });
      } catch (error) {
        this.unresolved(link.child, batch.site, `the lookup of its ${link.parent.name} links failed: ${errorMessage(error)}`);
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

function isPostgres(qr: QueryRunner): boolean {
  const type = dataSourceOf(qr).driver.options.type;
  return type === 'postgres' || type === 'cockroachdb';
}

/** A table path escaped the way TypeORM's own statements write it. */
function escapePath(qr: QueryRunner, tablePath: string): string {
  const driver = dataSourceOf(qr).driver;
  return tablePath
    .split('.')
    .map((part) => (part === '' ? part : driver.escape(part)))
    .join('.');
}
