import type { DataSource, EntityManager } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import type { EntityMetadata } from 'typeorm';
import { RegistrationError } from '../errors';
import type { ParentId } from '../registry/members';
import { rendererOf, type IdsRef, type Params, type Sql, type Statement } from '../db/render';
import { aggregateType } from './check';
import { ExpressionError, expressionSql, parseExpression, type Expr } from './expression';
import { compileWhere } from './filter';
import { sourceKey, sourceOf, sourceTable, type AggregateSource } from './sources';
import { childMetadata } from './target';
import type { AggregateKind, AggregateSpec } from './spec';
import { columnType, type ValueType } from './types';

/** One derived field of a parent and how it is computed. */
export interface AggregateField {
  /** Property of the parent. */
  readonly field: string;
  /** Its column. */
  readonly column: ColumnMetadata;
  /** The column's type, with the database's defaults (what it rounds and cuts). */
  readonly type: ValueType;
  readonly kind: AggregateKind;
  /** The type of the aggregate's value before it is written (verify compares at the column's precision). */
  readonly value: ValueType;
  /** Where its children are found: by a foreign key, or through a many-to-many relation's join table. */
  readonly source: AggregateSource;
}

/** Stored and expected values of one parent, in the order of {@link CompiledAggregates.fields}. */
export interface CompareRow {
  readonly id: unknown;
  readonly stored: readonly unknown[];
  readonly expected: readonly unknown[];
}

/** A parent's aggregates compiled to one set-based statement per batch of ids. */
export interface CompiledAggregates {
  readonly fields: readonly AggregateField[];
  /**
   * Writes every derived field of `ids`; ids without a row are skipped. PostgreSQL: one UPDATE.
   * MySQL/MariaDB: one SELECT of the values (no locks on the children), then one UPDATE.
   */
  update(manager: EntityManager, ids: readonly ParentId[]): Promise<void>;
  /** Reads the stored and the expected values of `ids` in one SELECT; ids without a row are left out. */
  compare(manager: EntityManager, ids: readonly ParentId[]): Promise<CompareRow[]>;
  /** The first statement of {@link update} for `ids`, as sent: the UPDATE (PostgreSQL), the SELECT of the values (MySQL/MariaDB). */
  updateStatement(ids: readonly ParentId[]): Statement;
  /** The SELECT of {@link compare} for `ids`, as sent. */
  compareStatement(ids: readonly ParentId[]): Statement;
}

const KINDS: readonly AggregateKind[] = ['count', 'sum', 'min', 'max', 'avg'];

interface Item {
  readonly field: AggregateField;
  /** The aggregate over the child rows of one group (`sum(c."qty")`). */
  readonly sql: Sql;
  /** count and sum of no rows are 0, not NULL. */
  readonly zeroWhenEmpty: boolean;
  readonly alias: string;
}

interface Group {
  readonly alias: string;
  readonly source: AggregateSource;
  readonly items: Item[];
}

/**
 * Compiles a parent's declared aggregates. Every problem (an unknown field or property, an
 * expression outside the grammar, an unsupported filter operator, no or several relations to
 * the parent, a `via` that is no many-to-many relation between them, an unsupported driver, a
 * function or a column that does not fit the expression's type) is a RegistrationError naming
 * the field and the entities.
 */
export function compileAggregates(
  dataSource: DataSource,
  parent: EntityMetadata,
  specs: Readonly<Record<string, AggregateSpec>>,
): CompiledAggregates {
  const dialect = rendererOf(dataSource, `parent ${parent.name}`);
  const q = (identifier: string): string => dialect.quote(identifier);
  const primary = parent.primaryColumns[0] as ColumnMetadata;
  const groups = new Map<string, Group>();
  const fields: AggregateField[] = [];
  const entries = Object.entries(specs ?? {});
  if (entries.length === 0) throw new RegistrationError(`parent ${parent.name}: aggregates is empty; declare at least one field`);

  for (const [field, spec] of entries) {
    const what = `aggregate "${field}" of ${parent.name}`;
    const column = parentColumn(parent, field, what);
    if (fields.some((f) => f.column === column))
      throw new RegistrationError(`${what}: its column is already derived by another field`);
    if (typeof spec !== 'object' || spec === null || !KINDS.includes(spec.kind)) {
      throw new RegistrationError(`${what}: expected a spec made by count(), sum(), min(), max() or avg(), got ${String(spec)}`);
    }
    const child = childMetadata(dataSource, spec.child, what);
    const source = sourceOf(parent, child, spec, what);
    const key = sourceKey(source);
    let group = groups.get(key);
    if (!group) {
      group = { alias: `a${groups.size}`, source, items: [] };
      groups.set(key, group);
    }
    const col = (c: ColumnMetadata): string => `c.${q(c.databaseName)}`;
    if (spec.kind !== 'count' && typeof spec.expression !== 'string') {
      throw new RegistrationError(`${what}: ${spec.kind}() needs an expression over ${child.name}'s properties`);
    }
    const expression = spec.expression === undefined ? undefined : compileExpression(spec.expression, child, col, what);
    const filter =
      spec.where === undefined ? undefined : compileWhere(spec.where, { what, metadata: child, dialect, column: col });
    const type = columnType(dataSource, column);
    const value = aggregateType({
      what,
      kind: spec.kind,
      child,
      expression: expression && { text: spec.expression as string, parsed: expression.parsed },
      columnType: (c) => columnType(dataSource, c),
      parent,
      column,
      target: type,
    });
    const f: AggregateField = Object.freeze({ field, column, type, kind: spec.kind, value, source: group.source });
    fields.push(f);
    group.items.push({
      field: f,
      sql: aggregateSql(spec.kind, expression?.sql, filter),
      zeroWhenEmpty: spec.kind === 'count' || spec.kind === 'sum',
      alias: `v${fields.length - 1}`,
    });
  }

  const table = dialect.table(parent);
  const pk = q(primary.databaseName);
  const bindIds = dialect.ids(primary);
  // mysql2 reads BIGINT as a JS number, which cannot hold every 64-bit key: integer keys travel
  // as text and are cast back when bound.
  const integerKey =
    dialect.name === 'mysql' &&
    (primary.type === Number || ['int', 'integer', 'bigint', 'smallint', 'tinyint', 'mediumint'].includes(String(primary.type)));
  const idOut = integerKey ? `CAST(p.${q(primary.databaseName)} AS CHAR) AS id` : `p.${q(primary.databaseName)} AS id`;
  const idIn = (placeholder: string): string =>
    integerKey ? `CAST(${placeholder} AS ${primary.unsigned ? 'UNSIGNED' : 'SIGNED'})` : placeholder;
  const all = [...groups.values()];
  const items = all.flatMap((g) => g.items.map((item) => ({ group: g, item })));
  const value = (g: Group, item: Item): string =>
    item.zeroWhenEmpty ? `COALESCE(${g.alias}.${item.alias}, 0)` : `${g.alias}.${item.alias}`;
  // One derived table per source (a child entity by one foreign key, or through one join table):
  // the aggregates of the batch's parents, conditional ones as CASE inside the aggregate, so one
  // pass over the children serves all.
  const derived = (p: Params, ids: IdsRef, g: Group): string =>
    sourceTable(dialect, g.source, g.items.map((item) => `${item.sql(p)} AS ${item.alias}`).join(', '), ids);
  const joins = (p: Params, ids: IdsRef, on: string): string =>
    all.map((g) => ` LEFT JOIN ${derived(p, ids, g)} ${g.alias} ON ${g.alias}.fk = ${on}`).join('');

  // PostgreSQL reads the children from the statement's snapshot without locking them: one
  // UPDATE ... FROM does it all. InnoDB's UPDATE ... JOIN would take shared next-key locks on the
  // children read, and deadlock with the host's own child inserts, updates and moves (the host's
  // transaction, the smaller one, being the victim). So on MySQL/MariaDB the batch's values are
  // read by a plain SELECT (a consistent read, no locks), as text so nothing is lost on the way
  // (DECIMAL, DATETIME(6), BIGINT), and written by one UPDATE ... JOIN over the bound values,
  // which locks the parent rows only.
  const updateSql = (ids: readonly ParentId[]): Sql =>
    dialect.name === 'postgres'
      ? (p) => {
          const ref = bindIds(p, ids);
          const set = items.map(({ group, item }) => `${q(item.field.column.databaseName)} = ${value(group, item)}`).join(', ');
          return `UPDATE ${table} p SET ${set} FROM ${ref.rows('x')}${joins(p, ref, 'x.id')} WHERE p.${pk} = x.id`;
        }
      : (p) => {
          const ref = bindIds(p, ids);
          const values = items.map(({ group, item }, i) => `CAST(${value(group, item)} AS CHAR) AS e${i}`).join(', ');
          return `SELECT ${idOut}, ${values} FROM ${table} p${joins(p, ref, `p.${pk}`)} WHERE ${ref.in(`p.${pk}`)}`;
        };
  const writeValues = (rows: readonly Record<string, unknown>[]): Sql => {
    const set = items.map(({ item }, i) => `p.${q(item.field.column.databaseName)} = a.e${i}`).join(', ');
    return (p) => {
      const first = (row: Record<string, unknown>) =>
        `SELECT ${idIn(p.value(row.id))} AS id, ${items.map((_x, i) => `${p.value(row[`e${i}`])} AS e${i}`).join(', ')}`;
      const rest = (row: Record<string, unknown>) =>
        `SELECT ${[idIn(p.value(row.id)), ...items.map((_x, i) => p.value(row[`e${i}`]))].join(', ')}`;
      const source = rows.map((row, i) => (i === 0 ? first(row) : rest(row))).join(' UNION ALL ');
      return `UPDATE ${table} p JOIN (${source}) a ON a.id = p.${pk} SET ${set}`;
    };
  };
  // Bound values per UPDATE stay well under the protocol's 65,535 placeholders.
  const rowsPerWrite = Math.max(1, Math.floor(60_000 / (items.length + 1)));
  const compareSql =
    (ids: readonly ParentId[]): Sql =>
    (p) => {
      const ref = bindIds(p, ids);
      const stored = items.map(({ item }, i) => `p.${q(item.field.column.databaseName)} AS s${i}`).join(', ');
      const expected = items.map(({ group, item }, i) => `${value(group, item)} AS e${i}`).join(', ');
      return `SELECT ${idOut}, ${stored}, ${expected} FROM ${table} p${joins(p, ref, `p.${pk}`)} WHERE ${ref.in(`p.${pk}`)}`;
    };
  const ordered = items.map(({ item }) => item.field);

  return Object.freeze({
    fields: Object.freeze(ordered),
    updateStatement: (ids: readonly ParentId[]) => dialect.render(updateSql(ids)),
    compareStatement: (ids: readonly ParentId[]) => dialect.render(compareSql(ids)),
    async update(manager: EntityManager, ids: readonly ParentId[]): Promise<void> {
      if (ids.length === 0) return;
      const { sql, params } = dialect.render(updateSql(ids));
      if (dialect.name === 'postgres') {
        await manager.query(sql, params);
        return;
      }
      const rows = (await manager.query(sql, params)) as Record<string, unknown>[];
      for (let i = 0; i < rows.length; i += rowsPerWrite) {
        const write = dialect.render(writeValues(rows.slice(i, i + rowsPerWrite)));
        await manager.query(write.sql, write.params);
      }
    },
    async compare(manager: EntityManager, ids: readonly ParentId[]): Promise<CompareRow[]> {
      if (ids.length === 0) return [];
      const { sql, params } = dialect.render(compareSql(ids));
      const rows = (await manager.query(sql, params)) as Record<string, unknown>[];
      return rows.map((row) => ({
        id: row.id,
        stored: ordered.map((_f, i) => row[`s${i}`]),
        expected: ordered.map((_f, i) => row[`e${i}`]),
      }));
    },
  });
}

function aggregateSql(kind: AggregateKind, expression: string | undefined, filter: Sql | undefined): Sql {
  if (!filter) return () => (expression === undefined ? 'count(*)' : `${kind}(${expression})`);
  const then = expression ?? '1';
  return (p) => `${kind}(CASE WHEN ${filter(p)} THEN ${then} END)`;
}

function compileExpression(
  text: string,
  child: EntityMetadata,
  col: (c: ColumnMetadata) => string,
  what: string,
): { sql: string; parsed: Expr } {
  const where = `${what}: expression ${JSON.stringify(text)} of ${child.name}`;
  try {
    const parsed = parseExpression(text);
    const sql = expressionSql(parsed, (name, position) => {
      const column = child.findColumnWithPropertyPathStrict(name);
      if (column) return col(column);
      const relation = child.findRelationWithPropertyPath(name);
      if (relation) throw new ExpressionError(position, `property "${name}" is a relation, not a column`);
      const known = child.columns.map((c) => c.propertyPath).join(', ');
      throw new ExpressionError(position, `unknown property "${name}" (properties: ${known})`);
    });
    return { sql, parsed };
  } catch (error) {
    if (error instanceof ExpressionError) throw new RegistrationError(`${where}: ${error.message}`, { cause: error });
    throw error;
  }
}

function parentColumn(parent: EntityMetadata, field: string, what: string): ColumnMetadata {
  const column = parent.findColumnWithPropertyPathStrict(field);
  if (!column) {
    const relation = parent.findRelationWithPropertyPath(field);
    if (relation)
      throw new RegistrationError(`${what}: "${field}" is a relation of ${parent.name}; a derived field must be a column`);
    const known = parent.columns.map((c) => c.propertyPath).join(', ');
    throw new RegistrationError(`${what}: ${parent.name} has no column property "${field}" (properties: ${known})`);
  }
  if (column.isPrimary) throw new RegistrationError(`${what}: "${field}" is the primary key of ${parent.name}`);
  return column;
}
