import type { FindOperator, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import type { EntityMetadata } from 'typeorm';
import { RegistrationError } from '../errors';
import type { Params, Renderer, Sql } from '../db/render';

/** Operators a filter may use, by FindOperator type, with the TypeORM function that makes each. */
const SUPPORTED: Readonly<Record<string, string>> = Object.freeze({
  equal: 'Equal',
  not: 'Not',
  lessThan: 'LessThan',
  lessThanOrEqual: 'LessThanOrEqual',
  moreThan: 'MoreThan',
  moreThanOrEqual: 'MoreThanOrEqual',
  in: 'In',
  isNull: 'IsNull',
  between: 'Between',
  like: 'Like',
  ilike: 'ILike',
  and: 'And',
  or: 'Or',
});
const UNSUPPORTED_NAMES: Readonly<Record<string, string>> = Object.freeze({
  raw: 'Raw',
  any: 'Any',
  arrayContains: 'ArrayContains',
  arrayContainedBy: 'ArrayContainedBy',
  arrayOverlap: 'ArrayOverlap',
  jsonContains: 'JsonContains',
});
const COMPARISONS: Readonly<Record<string, string>> = Object.freeze({
  lessThan: '<',
  lessThanOrEqual: '<=',
  moreThan: '>',
  moreThanOrEqual: '>=',
  like: 'LIKE',
});

type Operator = FindOperator<unknown>;

function isFindOperator(value: unknown): value is Operator {
  return typeof value === 'object' && value !== null && (value as ObjectLiteral)['@instanceof'] === Symbol.for('FindOperator');
}

function isScalar(value: unknown): boolean {
  return (
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'boolean' ||
    typeof value === 'bigint' ||
    value instanceof Date ||
    Buffer.isBuffer(value)
  );
}

function isPlainObject(value: unknown): value is ObjectLiteral {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Where a filter is compiled for, to name in errors. */
export interface FilterContext {
  /** e.g. `aggregate "bigLines" of Order`. */
  readonly what: string;
  /** The child entity filtered. */
  readonly metadata: EntityMetadata;
  readonly dialect: Renderer;
  /** The qualified, quoted SQL of a child column (`c."qty"`). */
  readonly column: (column: ColumnMetadata) => string;
}

/**
 * Compiles a TypeORM `FindOptionsWhere` (or an array of them, an OR) over the child into SQL
 * whose values are all bound parameters; `undefined` when it matches every row (`{}`, as
 * TypeORM reads it). Anything it cannot compile is a RegistrationError naming the property.
 */
export function compileWhere(where: unknown, ctx: FilterContext): Sql | undefined {
  if (Array.isArray(where)) {
    const parts = where.map((w, i) => compileObject(w, ctx, '', `where[${i}]`));
    // One branch matching every row makes the whole OR match every row.
    if (parts.length === 0 || parts.some((part) => part === undefined)) return undefined;
    const defined = parts as Sql[];
    return defined.length === 1 ? defined[0] : (p) => defined.map((part) => `(${part(p)})`).join(' OR ');
  }
  return compileObject(where, ctx, '', 'where');
}

function compileObject(where: unknown, ctx: FilterContext, prefix: string, at: string): Sql | undefined {
  const fail = (message: string): RegistrationError => new RegistrationError(`${ctx.what}: ${at}: ${message}`);
  if (!isPlainObject(where)) {
    throw fail(`expected an object of ${ctx.metadata.name} properties (or an array of them), got ${describe(where)}`);
  }
  const parts: Sql[] = [];
  for (const key of Object.keys(where)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const value: unknown = where[key];
    const column = ctx.metadata.findColumnWithPropertyPathStrict(path);
    if (column) {
      if (value === undefined || value === null) {
        throw fail(`property "${path}" of ${ctx.metadata.name} is ${String(value)}; use IsNull() to match NULL`);
      }
      parts.push(condition(value, column, ctx, (message) => fail(`property "${path}" of ${ctx.metadata.name}: ${message}`)));
      continue;
    }
    if (ctx.metadata.findEmbeddedWithPropertyPath(path) && isPlainObject(value)) {
      const inner = compileObject(value, ctx, path, at);
      if (inner) parts.push(inner);
      continue;
    }
    const relation = ctx.metadata.findRelationWithPropertyPath(path);
    if (relation) {
      const fk = relation.joinColumns.length === 1 ? relation.joinColumns[0] : undefined;
      const hint = fk && fk.propertyName !== relation.propertyName ? ` (its column is "${fk.propertyPath}")` : '';
      throw fail(`property "${path}" of ${ctx.metadata.name} is a relation; filter on a column${hint}`);
    }
    const known = ctx.metadata.columns.map((c) => c.propertyPath).join(', ');
    throw fail(`unknown property "${path}" of ${ctx.metadata.name} (properties: ${known})`);
  }
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : (p) => parts.map((part) => `(${part(p)})`).join(' AND ');
}

/** The condition on one column: a plain value (equality) or a FindOperator. */
function condition(value: unknown, column: ColumnMetadata, ctx: FilterContext, fail: (m: string) => RegistrationError): Sql {
  const col = ctx.column(column);
  const bind = (v: unknown): ((p: Params) => string) => {
    if (!isScalar(v)) throw fail(`a value must be a string, number, boolean, bigint, Date or Buffer, got ${describe(v)}`);
    // The column's transformer applies to filter values, as it does in TypeORM's own finds.
    const stored = toDatabase(column, v);
    return (p) => p.value(stored);
  };
  if (!isFindOperator(value)) {
    const v = bind(value);
    return (p) => `${col} = ${v(p)}`;
  }
  return operator(value, col, bind, ctx, fail);
}

function operator(
  op: Operator,
  col: string,
  bind: (v: unknown) => (p: Params) => string,
  ctx: FilterContext,
  fail: (m: string) => RegistrationError,
): Sql {
  const type = op.type;
  if (!(type in SUPPORTED)) {
    const name = UNSUPPORTED_NAMES[type] ?? type;
    throw fail(
      `the ${name}() operator is not supported (supported: ${Object.values(SUPPORTED).join(', ')}, plain values, arrays as OR)`,
    );
  }
  const nested = op.child;
  if (type === 'not') {
    if (nested) {
      const inner = operator(nested, col, bind, ctx, fail);
      return (p) => `NOT (${inner(p)})`;
    }
    if (op.value === null || op.value === undefined) throw fail('Not() of null; use Not(IsNull())');
    const v = bind(op.value);
    return (p) => `${col} <> ${v(p)}`;
  }
  if (type === 'and' || type === 'or') {
    const ops = op.value;
    if (!Array.isArray(ops) || ops.length === 0 || !ops.every(isFindOperator)) {
      throw fail(`${SUPPORTED[type]}() takes one or more operators`);
    }
    const inner = ops.map((o: Operator) => operator(o, col, bind, ctx, fail));
    const joiner = type === 'and' ? ' AND ' : ' OR ';
    return (p) => inner.map((part) => `(${part(p)})`).join(joiner);
  }
  if (nested) throw fail(`${SUPPORTED[type]}() of another operator (${nested.type}) is not supported`);
  switch (type) {
    case 'isNull':
      return () => `${col} IS NULL`;
    case 'equal': {
      const v = bind(op.value);
      return (p) => `${col} = ${v(p)}`;
    }
    case 'in': {
      const values = op.value;
      if (!Array.isArray(values)) throw fail(`In() takes an array, got ${describe(values)}`);
      // An empty IN matches nothing (TypeORM writes 0=1 too).
      if (values.length === 0) return () => '1 = 0';
      const bound = values.map(bind);
      return (p) => `${col} IN (${bound.map((v) => v(p)).join(', ')})`;
    }
    case 'between': {
      const values = op.value;
      if (!Array.isArray(values) || values.length !== 2) throw fail('Between() takes two values');
      const [from, to] = values.map(bind) as [(p: Params) => string, (p: Params) => string];
      return (p) => `${col} BETWEEN ${from(p)} AND ${to(p)}`;
    }
    case 'ilike': {
      const v = bind(op.value);
      return (p) => ctx.dialect.ilike(col, v(p));
    }
    default: {
      const sqlOp = COMPARISONS[type] as string;
      const v = bind(op.value);
      return (p) => `${col} ${sqlOp} ${v(p)}`;
    }
  }
}

/** A value through the column's transformer(s), in declaration order, as TypeORM's finds apply them. */
function toDatabase(column: ColumnMetadata, value: unknown): unknown {
  const t = column.transformer;
  if (!t) return value;
  return (Array.isArray(t) ? t : [t]).reduce<unknown>((v, one) => one.to(v), value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object (${(value as object).constructor?.name ?? 'no prototype'})`;
  return `${typeof value} ${String(value)}`;
}
