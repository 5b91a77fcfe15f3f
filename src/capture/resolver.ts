import { awaitsBeforeQuery, dataSourceOf } from '../typeorm-types';
import type { EntityMetadata, ObjectLiteral, QueryRunner } from 'typeorm';
import { readForeignKey, readJunctionColumn, type ForeignKeyLink, type JunctionLink, type KeyRead } from '../registry/links';
import type { Registry } from '../registry/registry';
import type { Intent } from './lookup-sql';
import { idMapOf, memberKey, type Found, type Lookups, type Sink, type Unresolved } from './lookups';
import type { ParameterStyle } from './sql-scan';
import { isWrite, parseWrite } from './sql-select';
import { isUpsert, parseUpsert, upsertTable } from './sql-upsert';

/** The kinds of child write a subscriber event reports. */
export type WriteKind = 'insert' | 'update' | 'remove' | 'soft-remove' | 'recover';

/** One subscriber event, whatever its kind. */
export interface WriteEvent {
  readonly kind: WriteKind;
  readonly queryRunner: QueryRunner;
  readonly metadata: EntityMetadata;
  readonly entity: ObjectLiteral | undefined;
  readonly databaseEntity: ObjectLiteral | undefined;
  /** The primary key map (or value) TypeORM gives insert and remove events. */
  readonly entityId: unknown;
}

/** Why statements are not read on TypeORM 0.3.18 to 0.3.22 (see awaitsBeforeQuery). */
const LATE =
  'this TypeORM (0.3.18 to 0.3.22) runs a statement without waiting for the subscriber to read the rows it writes; ' +
  'TypeORM 0.3.23 or later waits';

/**
 * Writes whose events name no row (QueryBuilder writes by criteria, children orphaned or bound
 * by a parent's save): their statement is read when it runs, on the same query runner.
 */
interface Watch {
  readonly metadata: EntityMetadata;
  readonly kind: Exclude<WriteKind, 'insert'>;
  readonly site: string;
  /** The SET values of each QueryBuilder update (undefined for a parent's save). */
  readonly valuesSets: (ObjectLiteral | undefined)[];
  /** After events still to come for this watch. */
  remaining: number;
  /** Statements looked up. */
  matched: number;
  settled: boolean;
  /** Why a statement could not be looked up, if one could not. */
  reason: string | undefined;
  /** Primary keys of the rows the statements picked, to read their new keys after. */
  readonly ids: Map<string, ObjectLiteral>;
}

/**
 * Finds the parents a child write touches, old and new: from the event where it carries them,
 * else by a lookup in the same transaction (batched), only when the event does not.
 */
export class Resolver {
  private readonly watches = new WeakMap<QueryRunner, Watch[]>();

  constructor(
    private readonly registry: Registry,
    private readonly lookups: Lookups,
    private readonly sink: Sink,
    private readonly unresolved: Unresolved,
  ) {}

  /** True when `metadata` is a registered child or join table. */
  concerns(metadata: EntityMetadata): boolean {
    return this.registry.linksOf(metadata).length > 0 || this.registry.junctionLinksOf(metadata).length > 0;
  }

  /** Before a write: reads what the write is about to change and its after event will not tell. */
  before(e: WriteEvent): Promise<void> | undefined {
    if (e.kind === 'insert' || !this.concerns(e.metadata)) return undefined;
    if (namesNoRow(e)) {
      this.watch(e);
      return undefined;
    }
    // Join rows are named by their ids, which the after event has too.
    if (e.metadata.isJunction) return undefined;
    const site = siteOf(e);
    const links = this.registry.linksOf(e.metadata);
    const waits: Promise<void>[] = [];
    const unknown = foreignKeys(links).filter((link) => !oldKey(link, e).known);
    const viaBefore = e.kind === 'remove' && links.some((l) => l.kind === 'junction');
    const id = unknown.length > 0 || viaBefore ? idOf(e) : undefined;
    if (unknown.length > 0) {
      if (id) waits.push(this.lookups.rows(e.queryRunner, e.metadata, id, unknown, [], intentOf(e.kind), site));
      else this.unresolved(e.metadata, site, 'neither its foreign key nor its primary key is known');
    }
    // A removed child's links go with it (by TypeORM, or by the join table's ON DELETE): read them first.
    if (viaBefore) this.viaLinks(e, links, id, 'delete', site, waits);
    return settle(waits);
  }

  /** After a write: the parents the event names, and lookups for those it does not. */
  after(e: WriteEvent): Promise<void> | undefined {
    if (!this.concerns(e.metadata)) return undefined;
    if (e.kind !== 'insert' && namesNoRow(e)) return this.settleWatch(e);
    const site = siteOf(e);
    const found: Found[] = [];
    const waits: Promise<void>[] = [];
    for (const link of this.registry.junctionLinksOf(e.metadata)) {
      const read = readJunctionColumn(link.parentColumn, e.entityId, e.entity, e.databaseEntity);
      if (!read.known) this.unresolved(e.metadata, site, `the join row does not name its ${link.parent.name}`);
      else if (read.value !== null) found.push({ parent: link.parent, id: read.value });
    }
    const links = this.registry.linksOf(e.metadata);
    const reread: ForeignKeyLink[] = [];
    const counted = new Set<string>();
    const add = (link: ForeignKeyLink, read: KeyRead): boolean => {
      if (!read.known) return false;
      const key = memberKey(link.parent, read.value);
      if (read.value !== null && !counted.has(key)) {
        counted.add(key);
        found.push({ parent: link.parent, id: read.value });
      }
      return true;
    };
    for (const link of foreignKeys(links)) {
      if (e.kind === 'insert') {
        if (!add(link, readForeignKey(link, e.entity))) reread.push(link);
      } else if (e.kind === 'update') {
        add(link, readForeignKey(link, e.databaseEntity));
        // The new key: written by the host, or by TypeORM for a child moved through a parent's list.
        if (!add(link, readForeignKey(link, e.entity))) reread.push(link);
      } else {
        // An unknown old key was read before the write.
        add(link, oldKey(link, e));
      }
    }
    // Links of a changed (not inserted, not removed) child are read after the write.
    const viaAfter = e.kind !== 'insert' && e.kind !== 'remove' && links.some((l) => l.kind === 'junction');
    const id = reread.length > 0 || viaAfter ? idOf(e) : undefined;
    if (reread.length > 0) {
      if (id) waits.push(this.lookups.rows(e.queryRunner, e.metadata, id, reread, [...counted], 'none', site));
      else this.unresolved(e.metadata, site, 'neither its foreign key nor its primary key is known');
    }
    if (viaAfter) this.viaLinks(e, links, id, 'none', site, waits);
    this.sink(e.queryRunner, found);
    return settle(waits);
  }

  /**
   * Before TypeORM runs a statement: an UPDATE or DELETE of a table with a watch is read first
   * (its rows' parents, and their ids for the new keys), and so is an upsert of a child (the
   * rows it updates). Cheap for other statements: a test of their first word.
   */
  beforeQuery(qr: QueryRunner, sql: string, parameters: unknown): Promise<void> | undefined {
    if (isUpsert(sql)) return this.upsert(qr, sql, parameters);
    const list = this.watches.get(qr);
    if (!list || list.length === 0 || !isWrite(sql)) return undefined;
    const open = list.filter((w) => !w.settled);
    if (!awaitsBeforeQuery(qr)) {
      for (const w of open) w.reason ??= LATE;
      return undefined;
    }
    const statement = parseWrite(sql, Array.isArray(parameters) ? parameters : [], styleOf(qr));
    if (typeof statement === 'string') {
      for (const w of open) w.reason ??= `its statement could not be read (${statement})`;
      return undefined;
    }
    const matching = open.filter((w) => sameTable(w.metadata, statement.tablePath) && verbOf(w.kind) === statement.verb);
    const first = matching[0];
    if (!first) return undefined;
    const links = this.registry.linksOf(first.metadata);
    return this.lookups
      .statement(qr, statement, {
        metadata: first.metadata,
        foreignKeys: foreignKeys(links),
        junctionParents: this.registry.junctionLinksOf(first.metadata),
        viaChildren: links.filter((l): l is JunctionLink => l.kind === 'junction'),
        wantIds: matching.some((w) => this.rereads(w).length > 0),
        site: first.site,
      })
      .then((ids) => {
        for (const w of matching) {
          w.matched += 1;
          for (const id of ids) w.ids.set(JSON.stringify(id), id);
        }
      });
  }

  /**
   * An upsert fires insert events only: the parents of the rows it updates (and may move to
   * another parent) are read before it runs. Join tables are left out: a join row is its key, so
   * an upsert of one conflicts only with the same link.
   */
  private upsert(qr: QueryRunner, sql: string, parameters: unknown): Promise<void> | undefined {
    const path = upsertTable(sql);
    const metadata = dataSourceOf(qr).entityMetadatas.find(
      (m) => !m.isJunction && sameTable(m, path) && this.registry.linksOf(m).length > 0,
    );
    if (!metadata) return undefined;
    if (!awaitsBeforeQuery(qr)) {
      this.unresolved(metadata, 'upsert', `the parents of the rows it updates cannot be read: ${LATE}`);
      return undefined;
    }
    const statement = parseUpsert(sql, Array.isArray(parameters) ? parameters : [], styleOf(qr));
    if (typeof statement === 'string') {
      this.unresolved(
        metadata,
        'upsert',
        `the rows it updates, and so the parents it moves them from, cannot be told: ${statement}`,
      );
      return undefined;
    }
    const links = this.registry.linksOf(metadata);
    return this.lookups.upsert(qr, statement, {
      metadata,
      foreignKeys: foreignKeys(links),
      junctionParents: [],
      viaChildren: links.filter((l): l is JunctionLink => l.kind === 'junction'),
      wantIds: false,
      site: 'upsert',
    });
  }

  /** Drops the watches of `qr` (its statement failed, or its transaction ended). */
  forget(qr: QueryRunner): void {
    this.watches.delete(qr);
  }

  private watch(e: WriteEvent): void {
    const kind = e.kind as Watch['kind'];
    const list = this.watches.get(e.queryRunner) ?? [];
    let w = list.find((x) => x.metadata === e.metadata && x.kind === kind && !x.settled);
    if (!w) {
      w = {
        metadata: e.metadata,
        kind,
        site: siteOf(e),
        valuesSets: [],
        remaining: 0,
        matched: 0,
        settled: false,
        reason: undefined,
        ids: new Map(),
      };
      list.push(w);
      this.watches.set(e.queryRunner, list);
    }
    w.valuesSets.push(e.kind === 'update' ? e.entity : undefined);
    w.remaining += 1;
  }

  private settleWatch(e: WriteEvent): Promise<void> | undefined {
    const list = this.watches.get(e.queryRunner) ?? [];
    const w = list.find((x) => x.metadata === e.metadata && x.kind === e.kind);
    if (!w) {
      this.unresolved(e.metadata, siteOf(e), 'its statement was not seen');
      return undefined;
    }
    w.remaining -= 1;
    if (w.remaining <= 0) list.splice(list.indexOf(w), 1);
    if (w.settled) return undefined;
    w.settled = true;
    // Without the rows, what the SET wrote is still known: the new parents are marked anyway.
    if (w.matched === 0) this.unresolved(e.metadata, w.site, w.reason ?? 'its statement was not seen');
    if (w.kind !== 'update') return undefined;
    // New keys: what a QueryBuilder's SET wrote, else the picked rows read again.
    const found: Found[] = [];
    for (const link of foreignKeys(this.registry.linksOf(w.metadata))) {
      for (const values of w.valuesSets) {
        const read = values !== undefined && mentions(link, values) ? readForeignKey(link, values) : undefined;
        if (read?.known && read.value !== null) found.push({ parent: link.parent, id: read.value });
      }
    }
    this.sink(e.queryRunner, found);
    const reread = this.rereads(w);
    if (reread.length === 0 || w.ids.size === 0) return undefined;
    const waits = [...w.ids.values()].map((id) => this.lookups.rows(e.queryRunner, w.metadata, id, reread, [], 'none', w.site));
    return settle(waits);
  }

  /**
   * The links whose new key a watched update leaves unknown: written by a parent's save (no
   * SET values) or by SQL in the SET. A SET without the key leaves it as it was.
   */
  private rereads(w: Watch): ForeignKeyLink[] {
    if (w.kind !== 'update') return [];
    return foreignKeys(this.registry.linksOf(w.metadata)).filter((link) =>
      w.valuesSets.some((values) => values === undefined || (mentions(link, values) && !readForeignKey(link, values).known)),
    );
  }

  private viaLinks(
    e: WriteEvent,
    links: readonly (ForeignKeyLink | JunctionLink)[],
    id: ObjectLiteral | undefined,
    intent: Intent,
    site: string,
    waits: Promise<void>[],
  ): void {
    const via = links.filter((l): l is JunctionLink => l.kind === 'junction');
    if (via.length === 0) return;
    const single = e.metadata.primaryColumns.length === 1 ? e.metadata.primaryColumns[0] : undefined;
    const childId: unknown = id && single ? single.getEntityValue(id) : undefined;
    if (childId === undefined || childId === null) {
      this.unresolved(e.metadata, site, 'its primary key is not known, so its links cannot be read');
      return;
    }
    for (const link of via) waits.push(this.lookups.junction(e.queryRunner, link, [childId], intent, site));
  }
}

function foreignKeys(links: readonly (ForeignKeyLink | JunctionLink)[]): ForeignKeyLink[] {
  return links.filter((l): l is ForeignKeyLink => l.kind === 'foreignKey');
}

/** An event that names no row: QueryBuilder writes, and rows a parent's save orphans or binds by id. */
function namesNoRow(e: WriteEvent): boolean {
  if (e.kind === 'update') return e.databaseEntity === undefined;
  return e.databaseEntity === undefined && e.entityId === undefined;
}

/** The key the row held before a write: the loaded row's, else the entity's. */
function oldKey(link: ForeignKeyLink, e: WriteEvent): KeyRead {
  const loaded = readForeignKey(link, e.databaseEntity);
  if (loaded.known || e.kind === 'update') return loaded;
  return readForeignKey(link, e.entity);
}

/** Primary key map of the event's row: from the loaded row, the event's id, or the entity. */
function idOf(e: WriteEvent): ObjectLiteral | undefined {
  const { metadata } = e;
  const fromRow = e.databaseEntity ? metadata.getEntityIdMap(e.databaseEntity) : undefined;
  if (fromRow) return fromRow;
  if (e.entityId !== undefined && e.entityId !== null) {
    if (typeof e.entityId === 'object') return metadata.getEntityIdMap(e.entityId as ObjectLiteral);
    const single = metadata.primaryColumns.length === 1 ? metadata.primaryColumns[0] : undefined;
    if (single) return idMapOf(metadata, [[single, e.entityId]]);
  }
  return e.entity ? metadata.getEntityIdMap(e.entity) : undefined;
}

/** Where a write came from, for warnings: the event kind and, where known, the path. */
function siteOf(e: WriteEvent): string {
  if (e.metadata.isJunction) return `${e.kind}/junction`;
  if (e.kind === 'insert') return e.entityId === undefined ? 'insert/querybuilder' : 'insert';
  if (!namesNoRow(e)) return e.kind;
  // A parent's save that orphans or binds a child gives no entity; a QueryBuilder update gives its SET.
  return e.kind === 'update' && e.entity === undefined ? 'update/relation' : `${e.kind}/querybuilder`;
}

/** What the statement after a before event does to the event's row. */
function intentOf(kind: WriteKind): Intent {
  return kind === 'remove' ? 'delete' : 'update';
}

function styleOf(qr: QueryRunner): ParameterStyle {
  const type = dataSourceOf(qr).driver.options.type;
  return type === 'postgres' || type === 'cockroachdb' ? 'numbered' : 'positional';
}

function verbOf(kind: Watch['kind']): 'UPDATE' | 'DELETE' {
  return kind === 'remove' ? 'DELETE' : 'UPDATE';
}

function sameTable(metadata: EntityMetadata, path: readonly string[]): boolean {
  if (path[path.length - 1] !== metadata.tableName) return false;
  const qualifier = path.length > 1 ? path[path.length - 2] : undefined;
  return (
    qualifier === undefined || metadata.schema === undefined || qualifier === metadata.schema || qualifier === metadata.database
  );
}

/** True when a QueryBuilder SET writes the link's key (as the column or as the relation). */
function mentions(link: ForeignKeyLink, values: ObjectLiteral): boolean {
  return link.column.propertyName in values || (link.relation !== undefined && link.relation.propertyName in values);
}

function settle(waits: Promise<void>[]): Promise<void> | undefined {
  if (waits.length === 0) return undefined;
  return Promise.all(waits).then(() => undefined);
}
