import type { EntityMetadata, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata, RelationMetadata } from '../typeorm-types';
import { RegistrationError } from '../errors';
import { isManyToMany, junctionOf } from '../aggregates/junction';
import type { ParentType } from './model';

/** A child that holds its parent's id in a column, or in the join column of a many-to-one relation. */
export interface ForeignKeyLink {
  readonly kind: 'foreignKey';
  readonly parent: ParentType;
  readonly child: EntityMetadata;
  /** The column holding the parent's id (the relation's join column when the key is only a relation). */
  readonly column: ColumnMetadata;
  /** The many-to-one relation over that column, if any. */
  readonly relation: RelationMetadata | undefined;
}

/** A child linked to its parents through the join table of a many-to-many relation. */
export interface JunctionLink {
  readonly kind: 'junction';
  readonly parent: ParentType;
  readonly child: EntityMetadata;
  /** The many-to-many relation named by `via`, on the parent or on the child. */
  readonly relation: RelationMetadata;
  readonly junction: EntityMetadata;
  /** Join-table column holding the parent's id. */
  readonly parentColumn: ColumnMetadata;
  /** Join-table column holding the child's id. */
  readonly childColumn: ColumnMetadata;
}

/** A registered child -> parent link. */
export type ChildLink = ForeignKeyLink | JunctionLink;

/** What an event tells of a key: its value (null included: no parent), or nothing. */
export type KeyRead = { readonly known: true; readonly value: unknown } | { readonly known: false };

const UNKNOWN: KeyRead = Object.freeze({ known: false });

/** The link of a child whose key is `foreignKey`: a column, or a many-to-one relation with one join column. */
export function foreignKeyLink(child: EntityMetadata, parent: ParentType, foreignKey: string): ForeignKeyLink {
  let column = child.findColumnWithPropertyName(foreignKey);
  let relation = child.manyToOneRelations.find((r) => r.propertyName === foreignKey);
  if (!column && relation) {
    if (relation.joinColumns.length !== 1) {
      throw new RegistrationError(`child ${child.name}: relation "${foreignKey}" must have exactly one join column`);
    }
    column = relation.joinColumns[0];
  }
  if (!column) {
    const known = child.columns.map((c) => c.propertyName).join(', ');
    const hint = isManyToMany(foreignKey, child, parent.metadata)
      ? `; "${foreignKey}" is a many-to-many relation: register it with { via: '${foreignKey}' }`
      : '';
    throw new RegistrationError(
      `child ${child.name}: foreignKey "${foreignKey}" is not a column or many-to-one relation (columns: ${known})${hint}`,
    );
  }
  const joinColumn = column;
  relation ??= child.manyToOneRelations.find((r) => r.joinColumns.some((j) => j.databaseName === joinColumn.databaseName));
  return Object.freeze({ kind: 'foreignKey', parent, child, column: joinColumn, relation });
}

/**
 * The link of a child reached through the many-to-many relation `via`, declared on the parent
 * (`User.favorites` for `child(Post, { parent: User, via: 'favorites' })`) or on the child.
 */
export function junctionLink(child: EntityMetadata, parent: ParentType, via: string): JunctionLink {
  const { relation, junction, parentColumn, childColumn } = junctionOf(parent.metadata, child, via, `child ${child.name}`);
  return Object.freeze({ kind: 'junction', parent, child, relation, junction, parentColumn, childColumn });
}

/**
 * The child's foreign key as `entity` holds it: through the explicit column or the relation
 * object. Unknown when the entity does not carry it (a relation not loaded, a partial object,
 * a raw SQL value), which is not the same as null (no parent).
 */
export function readForeignKey(link: ForeignKeyLink, entity: ObjectLiteral | undefined): KeyRead {
  if (!entity) return UNKNOWN;
  const direct: unknown = entity[link.column.propertyName];
  if (direct === null) return { known: true, value: null };
  if (direct !== undefined && typeof direct !== 'object' && typeof direct !== 'function') return { known: true, value: direct };
  if (link.relation) {
    const related: unknown = entity[link.relation.propertyName];
    if (related === null) return { known: true, value: null };
    if (related !== undefined && typeof related === 'object') {
      const referenced = link.relation.joinColumns[0]?.referencedColumn;
      const value: unknown = referenced ? referenced.getEntityValue(related as ObjectLiteral) : undefined;
      // A parent object without its id yet (inserted in the same save) tells nothing.
      return value === undefined ? UNKNOWN : { known: true, value };
    }
    if (related !== undefined && typeof related !== 'function') return { known: true, value: related };
  }
  return UNKNOWN;
}

/**
 * A join-table column's value in one of `rows`: id maps of join rows use property names,
 * rows inserted by a RelationQueryBuilder use database names.
 */
export function readJunctionColumn(column: ColumnMetadata, ...rows: unknown[]): KeyRead {
  for (const row of rows) {
    if (row === null || typeof row !== 'object') continue;
    const map = row as ObjectLiteral;
    for (const key of [column.propertyName, column.databaseName]) {
      const value: unknown = map[key];
      if (value !== undefined && typeof value !== 'function') return { known: true, value };
    }
  }
  return UNKNOWN;
}
