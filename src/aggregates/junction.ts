import type { EntityMetadata } from 'typeorm';
import type { ColumnMetadata, RelationMetadata } from '../typeorm-types';
import { RegistrationError } from '../errors';

/** A many-to-many relation between a parent and a child, and its join table's two columns. */
export interface Junction {
  /** The relation named by `via`, on the parent or on the child. */
  readonly relation: RelationMetadata;
  /** The join table. */
  readonly junction: EntityMetadata;
  /** Join-table column holding the parent's id. */
  readonly parentColumn: ColumnMetadata;
  /** Join-table column holding the child's id. */
  readonly childColumn: ColumnMetadata;
}

/**
 * The many-to-many relation `via` between `parent` and `child`, declared on the parent
 * (`Post.tags` for the tags of a post) or on the child, with the join-table column of each side.
 * A RegistrationError opened by `what` when `via` is no such relation, or its join table has
 * several columns on a side.
 */
export function junctionOf(parent: EntityMetadata, child: EntityMetadata, via: string, what: string): Junction {
  const between = (owner: EntityMetadata, other: EntityMetadata): RelationMetadata | undefined =>
    owner.manyToManyRelations.find((r) => r.propertyName === via && sameEntity(r.inverseEntityMetadata, other));
  const onParent = between(parent, child);
  const relation = onParent ?? between(child, parent);
  const junction = relation?.junctionEntityMetadata;
  if (!relation || !junction) {
    throw new RegistrationError(
      `${what}: via "${via}" is not a many-to-many relation between ${parent.name} and ${child.name} ` +
        `(many-to-many relations: ${manyToManyNames(parent, child) || 'none'})`,
    );
  }
  // Owner columns reference the entity holding @JoinTable; inverse columns the other one.
  const ownSide = relation.isOwning ? junction.ownerColumns : junction.inverseColumns;
  const otherSide = relation.isOwning ? junction.inverseColumns : junction.ownerColumns;
  const [parentColumns, childColumns] = onParent ? [ownSide, otherSide] : [otherSide, ownSide];
  const parentColumn = parentColumns[0];
  const childColumn = childColumns[0];
  if (!parentColumn || !childColumn || parentColumns.length !== 1 || childColumns.length !== 1) {
    throw new RegistrationError(
      `${what}: via "${via}": the join table ${junction.tableName} must have one column per side ` +
        `(has ${parentColumns.length} for ${parent.name}, ${childColumns.length} for ${child.name})`,
    );
  }
  return { relation, junction, parentColumn, childColumn };
}

/** The many-to-many relations of the entities, as `Entity.property`, for messages. */
export function manyToManyNames(...entities: EntityMetadata[]): string {
  return entities.flatMap((m) => m.manyToManyRelations.map((r) => `${m.name}.${r.propertyName}`)).join(', ');
}

/** Whether `name` is a many-to-many relation of either entity. */
export function isManyToMany(name: string, ...entities: EntityMetadata[]): boolean {
  return entities.some((m) => m.manyToManyRelations.some((r) => r.propertyName === name));
}

function sameEntity(a: EntityMetadata, b: EntityMetadata): boolean {
  return a === b || a.target === b.target;
}
