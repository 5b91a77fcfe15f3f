import type { DataSource, EntityMetadata, EntitySubscriberInterface, QueryRunner } from 'typeorm';

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

/** What `beforeQuery` / `afterQuery` receive, whichever TypeORM (generic in 0.3, not in 1.x). */
export type BeforeQuery = Parameters<NonNullable<EntitySubscriberInterface['beforeQuery']>>[0];
export type AfterQuery = Parameters<NonNullable<EntitySubscriberInterface['afterQuery']>>[0];
