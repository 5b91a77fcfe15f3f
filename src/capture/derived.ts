import type { EntityMetadata, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import { RegistrationError } from '../errors';
import type { ParentType } from '../registry';

/** Options of `parent()` that capture reads. */
export interface ParentCaptureOptions {
  /**
   * Properties of the parent's columns that its recompute writes (`['total', 'lineCount']`).
   * A host `save()` of the parent that writes one of them (typically a copy loaded before the
   * last recompute, written back whole) logs a warning once per column and marks the parent
   * again, so one more recompute heals the stale value. Writes made inside a recompute are not
   * host writes and are left alone. To stop the write-back, reload the entity before saving it,
   * or write only the columns you changed (`repository.update(id, { name })`, or a partial
   * `save({ id, name })`). Not `@Column({ update: false })`: TypeORM then leaves the column out
   * of every update, the recompute's own too (a recompute writing through `repository.update()`
   * throws UpdateValuesMissingError, or skips that column silently when it writes others).
   * @defaultValue none
   */
  derived?: readonly string[];
}

/** A host write of derived columns, seen in an update event of their parent. */
export interface DerivedWrite {
  readonly parent: ParentType;
  readonly columns: readonly ColumnMetadata[];
  /** The parent's id, when the event carries it. */
  readonly id: unknown;
}

/** The derived columns of each parent type, and the check of update events against them. */
export class DerivedColumns {
  private readonly byTarget = new Map<EntityMetadata['target'], { parent: ParentType; columns: Set<ColumnMetadata> }>();

  /** The columns named by `derived` on `metadata`; a RegistrationError names the property and the entity. */
  static resolve(metadata: EntityMetadata, derived: unknown): ColumnMetadata[] {
    if (derived === undefined) return [];
    if (!Array.isArray(derived)) {
      throw new RegistrationError(
        `parent ${metadata.name}: derived must be an array of column properties, got ${JSON.stringify(derived) ?? String(derived)}`,
      );
    }
    const columns = new Set<ColumnMetadata>();
    for (const property of derived as unknown[]) {
      const column = typeof property === 'string' ? metadata.findColumnWithPropertyPath(property) : undefined;
      if (!column || column.relationMetadata) {
        const known = metadata.columns
          .filter((c) => !c.isPrimary && !c.relationMetadata)
          .map((c) => c.propertyPath)
          .join(', ');
        throw new RegistrationError(
          `parent ${metadata.name}: derived ${JSON.stringify(property)} is not a column of ${metadata.name} (columns: ${known})`,
        );
      }
      if (column.isPrimary) {
        throw new RegistrationError(`parent ${metadata.name}: derived "${column.propertyPath}" is the primary key`);
      }
      columns.add(column);
    }
    return [...columns];
  }

  /** Records the derived columns of a registered parent type. */
  set(parent: ParentType, columns: readonly ColumnMetadata[]): void {
    if (columns.length === 0) this.byTarget.delete(parent.metadata.target);
    else this.byTarget.set(parent.metadata.target, { parent, columns: new Set(columns) });
  }

  /** Whether any parent type has derived columns (so a recompute's own writes must be told apart). */
  get any(): boolean {
    return this.byTarget.size > 0;
  }

  /** The derived columns an update of `metadata` wrote, or undefined when it wrote none. */
  written(
    metadata: EntityMetadata,
    updatedColumns: readonly ColumnMetadata[],
    entity: ObjectLiteral | undefined,
    databaseEntity: ObjectLiteral | undefined,
  ): DerivedWrite | undefined {
    const known = this.byTarget.get(metadata.target);
    if (!known || updatedColumns.length === 0) return undefined;
    const columns = updatedColumns.filter((c) => known.columns.has(c));
    if (columns.length === 0) return undefined;
    const row = databaseEntity ?? entity;
    return { parent: known.parent, columns, id: row ? known.parent.primary.getEntityValue(row) : undefined };
  }
}
