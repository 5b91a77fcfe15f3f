import type { DataSource, EntityMetadata, QueryRunner } from 'typeorm';

// TypeORM's column and relation metadata, reached through EntityMetadata: a deep import
// (`typeorm/metadata/...`) is not resolvable under every TypeORM version and module resolution
// a host may use, and our declaration files must compile in the host's project.

/** TypeORM's metadata of one column. */
export type ColumnMetadata = EntityMetadata['primaryColumns'][number];
/** TypeORM's metadata of one relation. */
export type RelationMetadata = EntityMetadata['relations'][number];

/** The DataSource of a query runner: `dataSource` in TypeORM 1.x, `connection` in 0.3. */
export function dataSourceOf(qr: QueryRunner): DataSource {
  const r = qr as unknown as { dataSource?: DataSource; connection?: DataSource };
  return (r.dataSource ?? r.connection) as DataSource;
}

/**
 * What `beforeQuery` receives, as much of it as capture reads. Our own shape: TypeORM's event
 * types are generic in 0.3, not in 1.x, and absent before 0.3.18 (which never calls the hook).
 */
export interface BeforeQuery {
  readonly queryRunner: QueryRunner;
  readonly query: string;
  readonly parameters?: unknown;
}

/** What `afterQuery` receives, as much of it as capture reads (see {@link BeforeQuery}). */
export interface AfterQuery extends BeforeQuery {
  readonly success: boolean;
}

const awaited = new WeakMap<object, boolean>();

/**
 * Whether `qr` waits for the subscribers' `beforeQuery` promises before it sends a statement:
 * TypeORM 0.3.23+ and 1.x do; 0.3.18 to 0.3.22 send the statement at once and wait after it
 * ran, so what a hook reads then is the statement's result, not the rows before it. Told from
 * the compiled `query` method (TypeORM ships tsc output), once per method.
 */
export function awaitsBeforeQuery(qr: QueryRunner): boolean {
  const query = (qr as unknown as { query?: unknown }).query;
  if (typeof query !== 'function') return true;
  let known = awaited.get(query);
  if (known === undefined) {
    known = !Function.prototype.toString.call(query).includes('broadcastBeforeQueryEvent(');
    awaited.set(query, known);
  }
  return known;
}
