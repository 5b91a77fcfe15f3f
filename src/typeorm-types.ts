import type { EntityMetadata } from 'typeorm';

// TypeORM's column and relation metadata, reached through EntityMetadata: a deep import
// (`typeorm/metadata/...`) is not resolvable under every TypeORM version and module resolution
// a host may use, and our declaration files must compile in the host's project.

/** TypeORM's metadata of one column. */
export type ColumnMetadata = EntityMetadata['primaryColumns'][number];
/** TypeORM's metadata of one relation. */
export type RelationMetadata = EntityMetadata['relations'][number];
