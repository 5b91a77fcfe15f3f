import type { EntityMetadata } from 'typeorm';
import type { ColumnMetadata, RelationMetadata } from '../typeorm-types';
import { RegistrationError } from '../errors';
import type { IdsRef, Renderer } from '../db/render';
import { isManyToMany, junctionOf, type Junction } from './junction';

/**
 * Where the children of an aggregate are found: rows of the child holding the parent's id in a
 * column (one-to-many), or rows of the child linked to the parent through the join table of a
 * many-to-many relation.
 */
export type AggregateSource =
  | {
      readonly kind: 'foreignKey';
      readonly child: EntityMetadata;
      /** The child's column holding the parent's id. */
      readonly column: ColumnMetadata;
      /** The many-to-one relation over that column, if any. */
      readonly relation: RelationMetadata | undefined;
    }
  | {
      readonly kind: 'junction';
      readonly child: EntityMetadata;
      /** The relation's name, as declared (`via`). */
      readonly via: string;
      readonly junction: Junction;
    };

/**
 * The source of an aggregate of `parent` over `child`: through the many-to-many relation `via`,
 * by the column or relation `foreignKey`, or by the child's one many-to-one relation to the
 * parent. A RegistrationError opened by `what` names the choice and the fix.
 */
export function sourceOf(
  parent: EntityMetadata,
  child: EntityMetadata,
  spec: { readonly foreignKey?: string | undefined; readonly via?: string | undefined },
  what: string,
): AggregateSource {
  const { foreignKey, via } = spec;
  if (via !== undefined) {
    if (foreignKey !== undefined) {
      throw new RegistrationError(
        `${what}: give foreignKey (one-to-many) or via (many-to-many), not both (got foreignKey "${foreignKey}" and via "${via}")`,
      );
    }
    if (typeof via !== 'string') throw new RegistrationError(`${what}: via must be a relation name, got ${String(via)}`);
    const junction = junctionOf(parent, child, via, what);
    const referenced = junction.parentColumn.referencedColumn;
    const primary = parent.primaryColumns[0];
    if (referenced && primary && referenced.databaseName !== primary.databaseName) {
      throw new RegistrationError(
        `${what}: via "${via}": its join table references ${parent.name}.${referenced.propertyPath}, not its primary key`,
      );
    }
    if (!junction.childColumn.referencedColumn) {
      throw new RegistrationError(`${what}: via "${via}": the join table's ${child.name} column references no column`);
    }
    return { kind: 'junction', child, via, junction };
  }
  const { column, relation } = foreignKeyOf(child, parent, foreignKey, what);
  return { kind: 'foreignKey', child, column, relation };
}

/** Aggregates of one parent over the same source share one derived table. */
export function sourceKey(source: AggregateSource): string {
  return source.kind === 'foreignKey'
    ? `fk\u0000${source.child.name}\u0000${source.column.databaseName}`
    : `m2m\u0000${source.child.name}\u0000${source.junction.junction.tablePath}\u0000${source.junction.parentColumn.databaseName}`;
}

/**
 * The derived table of one source for the batch's parents: the parent's id as `fk` and the
 * aggregates `aggs` over its live children (aliased `c`; soft-deleted ones left out), grouped by
 * parent. Through a join table (`j`), each link counts its child once.
 */
export function sourceTable(dialect: Renderer, source: AggregateSource, aggs: string, ids: IdsRef): string {
  const q = (identifier: string): string => dialect.quote(identifier);
  const child = source.child;
  const live = child.deleteDateColumn ? ` AND c.${q(child.deleteDateColumn.databaseName)} IS NULL` : '';
  if (source.kind === 'foreignKey') {
    const fk = `c.${q(source.column.databaseName)}`;
    return `(SELECT ${fk} AS fk, ${aggs} FROM ${dialect.table(child)} c WHERE ${ids.in(fk)}${live} GROUP BY ${fk})`;
  }
  const { junction, parentColumn, childColumn } = source.junction;
  const fk = `j.${q(parentColumn.databaseName)}`;
  const target = childColumn.referencedColumn as ColumnMetadata;
  const join = `JOIN ${dialect.table(child)} c ON c.${q(target.databaseName)} = j.${q(childColumn.databaseName)}`;
  return `(SELECT ${fk} AS fk, ${aggs} FROM ${dialect.table(junction)} j ${join} WHERE ${ids.in(fk)}${live} GROUP BY ${fk})`;
}

/** The child's column holding the parent's key: the named one, or the single relation to the parent. */
function foreignKeyOf(
  child: EntityMetadata,
  parent: EntityMetadata,
  name: string | undefined,
  what: string,
): { column: ColumnMetadata; relation: RelationMetadata | undefined } {
  const toParent = child.manyToOneRelations.filter((r) => r.inverseEntityMetadata === parent);
  let column: ColumnMetadata | undefined;
  let relation = toParent.find((r) => r.propertyPath === name);
  if (name !== undefined) {
    column = child.findColumnWithPropertyPathStrict(name);
    const any = child.manyToOneRelations.find((r) => r.propertyPath === name);
    if (any && any.inverseEntityMetadata !== parent) {
      throw new RegistrationError(
        `${what}: foreignKey "${name}" of ${child.name} is a relation to ${any.inverseEntityMetadata.name}, not to ${parent.name}`,
      );
    }
    if (!column && relation) {
      if (relation.joinColumns.length !== 1) {
        throw new RegistrationError(`${what}: relation "${name}" of ${child.name} must have exactly one join column`);
      }
      column = relation.joinColumns[0];
    }
    if (!column) {
      const known = child.columns.map((c) => c.propertyPath).join(', ');
      const hint = isManyToMany(name, child, parent)
        ? `; "${name}" is a many-to-many relation: give { via: '${name}' } instead of foreignKey`
        : '';
      throw new RegistrationError(
        `${what}: foreignKey "${name}" is not a column or many-to-one relation of ${child.name} (columns: ${known})${hint}`,
      );
    }
    const fk = column;
    relation ??= toParent.find((r) => r.joinColumns.some((j) => j.databaseName === fk.databaseName));
  } else {
    if (toParent.length !== 1) throw new RegistrationError(`${what}: ${inferenceFailure(child, parent, toParent)}`);
    relation = toParent[0];
    if (relation?.joinColumns.length !== 1) {
      throw new RegistrationError(
        `${what}: relation "${relation?.propertyPath}" of ${child.name} must have exactly one join column`,
      );
    }
    column = relation.joinColumns[0];
  }
  const referenced = relation?.joinColumns[0]?.referencedColumn;
  const primary = parent.primaryColumns[0];
  if (referenced && primary && referenced.databaseName !== primary.databaseName) {
    throw new RegistrationError(
      `${what}: relation "${relation?.propertyPath}" of ${child.name} references ${parent.name}.${referenced.propertyPath}, not its primary key`,
    );
  }
  return { column: column as ColumnMetadata, relation };
}

/** Why the child's relation to the parent cannot be inferred, and the option that says it. */
function inferenceFailure(child: EntityMetadata, parent: EntityMetadata, toParent: readonly RelationMetadata[]): string {
  const fix = `give foreignKey: the ${child.name} property holding the ${parent.name} id`;
  if (toParent.length > 1) {
    const names = toParent.map((r) => r.propertyPath);
    return (
      `${child.name} has ${toParent.length} many-to-one relations (${names.join(', ')}) to ${parent.name}; ${fix} ` +
      `(one of ${names.map((n) => `'${n}'`).join(', ')})`
    );
  }
  const between = [parent, child].flatMap((owner) => {
    const other = owner === parent ? child : parent;
    return owner.manyToManyRelations
      .filter((r) => r.inverseEntityMetadata.target === other.target)
      .map((r) => `'${r.propertyName}'`);
  });
  const via = between.length > 0 ? `, or via: ${between.join(' or ')} (a many-to-many relation)` : '';
  return `${child.name} has no many-to-one relation to ${parent.name}; ${fix}${via}`;
}
