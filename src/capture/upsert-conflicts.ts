import type { EntityMetadata } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import type { UpsertStatement, UpsertValue } from './sql-upsert';

/** A WHERE that picks the existing rows an upsert may update, with its parameters. */
export interface ConflictFilter {
  readonly where: string;
  readonly parameters: readonly unknown[];
}

/** How the driver writes an identifier and the n-th (1-based) parameter. */
export interface FilterSyntax {
  escape(name: string): string;
  param(n: number): string;
}

/**
 * The rows `statement` conflicts with: on PostgreSQL those matching its ON CONFLICT target, on
 * MySQL those matching any unique key of the table (primary key, unique constraints and
 * indices), for each VALUES row. `undefined` when no row can conflict (every key value is NULL
 * or generated); a string says why the rows cannot be told.
 */
export function conflictFilter(
  metadata: EntityMetadata,
  statement: UpsertStatement,
  syntax: FilterSyntax,
): ConflictFilter | string | undefined {
  const keys = uniqueKeys(metadata, statement);
  if (typeof keys === 'string') return keys;
  const parameters: unknown[] = [];
  const clauses: string[] = [];
  for (const key of keys) {
    const positions = key.map((c) => statement.columns.indexOf(c.databaseName));
    const tuples: string[][] = [];
    for (const row of statement.rows) {
      const tuple: string[] = [];
      for (const [i, column] of key.entries()) {
        const at = positions[i] ?? -1;
        const term = termOf(metadata, column, at >= 0 ? (row[at] as UpsertValue) : { kind: 'default' }, (value) => {
          parameters.push(value);
          return syntax.param(parameters.length);
        });
        if (term === null) break;
        if (typeof term !== 'string') return term.reason;
        tuple.push(term);
      }
      // A row with a NULL or fresh value in the key cannot conflict on it.
      if (tuple.length === key.length) tuples.push(tuple);
    }
    if (tuples.length === 0) continue;
    const names = key.map((c) => syntax.escape(c.databaseName));
    clauses.push(
      names.length === 1
        ? `${names[0] as string} IN (${tuples.map((t) => t[0]).join(', ')})`
        : tuples.map((t) => `(${names.map((name, i) => `${name} = ${t[i] as string}`).join(' AND ')})`).join(' OR '),
    );
  }
  if (clauses.length === 0) return undefined;
  const where = clauses.length === 1 ? (clauses[0] as string) : clauses.map((c) => `(${c})`).join(' OR ');
  return { where: statement.predicate ? `(${where}) AND (${statement.predicate})` : where, parameters };
}

/** The column sets a row of `statement` may conflict on. */
function uniqueKeys(metadata: EntityMetadata, statement: UpsertStatement): ColumnMetadata[][] | string {
  if (statement.target) {
    const key: ColumnMetadata[] = [];
    for (const name of statement.target) {
      const column = metadata.columns.find((c) => c.databaseName === name);
      if (!column) return `its ON CONFLICT column "${name}" is not a column of ${metadata.name}`;
      key.push(column);
    }
    return [key];
  }
  const all = [
    metadata.primaryColumns,
    ...metadata.uniques.map((u) => u.columns),
    ...metadata.indices.filter((i) => i.isUnique).map((i) => i.columns),
  ];
  const seen = new Set<string>();
  return all.filter((key) => {
    const id = key.map((c) => c.databaseName).join('\u0000');
    if (key.length === 0 || seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/** SQL comparing a key column with one value, null when the value cannot conflict, or why it is unknown. */
function termOf(
  metadata: EntityMetadata,
  column: ColumnMetadata,
  value: UpsertValue,
  param: (value: unknown) => string,
): string | null | { reason: string } {
  const name = `${metadata.name}.${column.propertyPath}`;
  switch (value.kind) {
    case 'parameter':
      return value.value === null || value.value === undefined ? null : param(value.value);
    case 'literal':
      return value.sql;
    case 'null':
      return null;
    case 'default':
      // A generated value is new; a nullable column without a default gets NULL.
      if (column.isGenerated || (column.default === undefined && column.isNullable)) return null;
      return { reason: `the value of ${name}, part of a unique key, is its column's DEFAULT` };
    case 'expression':
      return { reason: `the value of ${name}, part of a unique key, is computed (${value.sql})` };
  }
}
