import type { EntityMetadata, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import type { ParentType } from '../registry/model';
import type { Registry } from '../registry/registry';

/** A host write of derived columns, seen in an update event of their parent. */
export interface DerivedWrite {
  readonly parent: ParentType;
  readonly columns: readonly ColumnMetadata[];
  /** The parent's id, when the event carries it. */
  readonly id: unknown;
}

/** The derived columns an update of `metadata` wrote, or undefined when it wrote none. */
export function derivedWritten(
  registry: Registry,
  metadata: EntityMetadata,
  updatedColumns: readonly ColumnMetadata[],
  entity: ObjectLiteral | undefined,
  databaseEntity: ObjectLiteral | undefined,
): DerivedWrite | undefined {
  if (updatedColumns.length === 0) return undefined;
  const parent = registry.derivedOf(metadata);
  if (!parent) return undefined;
  const columns = updatedColumns.filter((c) => parent.derived.includes(c));
  if (columns.length === 0) return undefined;
  const row = databaseEntity ?? entity;
  return { parent, columns, id: row ? parent.primary.getEntityValue(row) : undefined };
}
