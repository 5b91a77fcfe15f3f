import type { EntityMetadata } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import { RegistrationError } from '../errors';

/** The columns named by a parent's `derived` option; a RegistrationError names the property and the entity. */
export function derivedColumns(metadata: EntityMetadata, derived: unknown): ColumnMetadata[] {
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
