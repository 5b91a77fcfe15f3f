import type { DataSource } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import { ExpressionError, type Expr } from './expression';

/**
 * What a column or an aggregate expression holds, as far as aggregates and verify care: the
 * family decides which functions take it and which columns can store it; scale, length and
 * fractional-second precision decide what a column would round or cut. `sql` names it in errors
 * (a column's type as the database spells it, e.g. `numeric(14,2)`, `datetime(6)`).
 */
export type ValueType =
  | { readonly family: 'integer'; readonly sql: string }
  | {
      readonly family: 'decimal';
      readonly sql: string;
      /** Digits after the point; undefined when not fixed (PostgreSQL `numeric` without precision, a quotient). */
      readonly scale: number | undefined;
      /** False for a quotient or an average: its digits go on, so any column rounds it. */
      readonly exact: boolean;
    }
  | { readonly family: 'float'; readonly sql: string }
  | {
      readonly family: 'string';
      readonly sql: string;
      /** Most characters held; undefined when unbounded. */
      readonly length: number | undefined;
      /** `char(n)`: stored padded with spaces. */
      readonly padded: boolean;
    }
  | { readonly family: 'datetime' | 'time'; readonly sql: string; readonly fsp: number; readonly zoned: boolean }
  | { readonly family: 'date' | 'boolean'; readonly sql: string }
  | { readonly family: 'other'; readonly sql: string; readonly comparable: boolean };

/** The type names below are the ones `driver.normalizeType()` returns, on PostgreSQL and on MySQL/MariaDB. */
const INTEGER = new Set(['smallint', 'integer', 'bigint', 'tinyint', 'mediumint', 'int']);
const DECIMAL = new Set(['numeric', 'decimal']);
const FLOAT = new Set(['real', 'double precision', 'float', 'double']);
const STRING = new Set([
  'character varying',
  'character',
  'text',
  'citext',
  'varchar',
  'char',
  'tinytext',
  'mediumtext',
  'longtext',
]);
const PADDED = new Set(['character', 'char']);
// MySQL's text types hold a fixed number of bytes; counted as characters, the longest they can be.
const TEXT_LENGTH: Readonly<Record<string, number>> = {
  tinytext: 255,
  text: 65_535,
  mediumtext: 16_777_215,
  longtext: 4_294_967_295,
};
const DATETIME = new Set(['timestamp without time zone', 'timestamp with time zone', 'datetime', 'timestamp']);
const TIME = new Set(['time without time zone', 'time with time zone', 'time']);
const ZONED = new Set(['timestamp with time zone', 'time with time zone']);
/** PostgreSQL's long names, shortened the way its users write them. */
const SHORT: Readonly<Record<string, string>> = {
  'timestamp without time zone': 'timestamp',
  'timestamp with time zone': 'timestamptz',
  'time without time zone': 'time',
  'time with time zone': 'timetz',
  'character varying': 'varchar',
  character: 'char',
};

/** What {@link columnType} reads of a column (ColumnMetadata has it all). */
export type ColumnShape = Pick<ColumnMetadata, 'type' | 'length' | 'precision' | 'scale' | 'isArray'>;

/**
 * The type of a column as its table has it: the declared type normalized the way TypeORM does
 * for the driver (`Number`, `'int4'` and `'integer'` are all `integer` on PostgreSQL), with the
 * database's defaults where the column gives no length, precision or scale (PostgreSQL
 * timestamps 6 digits of seconds, MySQL/MariaDB datetimes 0, MySQL decimals (10,0)).
 */
export function columnType(dataSource: DataSource, column: ColumnShape): ValueType {
  const driver = dataSource.driver;
  const mysql = dataSource.options.type === 'mysql' || dataSource.options.type === 'mariadb';
  const declared = column.type as unknown;
  const normalized = String(
    driver.normalizeType({ type: column.type, length: column.length, precision: column.precision, scale: column.scale }),
  ).toLowerCase();
  const defaults = (driver.dataTypeDefaults ?? {})[normalized] ?? {};
  const name = SHORT[normalized] ?? normalized;
  const precision = column.precision ?? undefined;
  if (column.isArray) return { family: 'other', sql: `${name}[]`, comparable: false };
  // MySQL keeps booleans as tinyint: the declared type tells them from numbers.
  if (declared === Boolean || declared === 'bool' || declared === 'boolean') return { family: 'boolean', sql: 'boolean' };
  if (INTEGER.has(normalized)) return { family: 'integer', sql: name };
  if (DECIMAL.has(normalized)) {
    // TypeORM writes the scale only beside a precision: without one, the table has the
    // database's default (MySQL decimal(10,0); PostgreSQL numeric of any scale).
    if (precision === undefined) {
      const p = defaults.precision;
      if (p === undefined) return { family: 'decimal', sql: name, scale: undefined, exact: true };
      const s = defaults.scale ?? 0;
      return { family: 'decimal', sql: `${name}(${p},${s})`, scale: s, exact: true };
    }
    const scale = column.scale ?? 0;
    return { family: 'decimal', sql: `${name}(${precision},${scale})`, scale, exact: true };
  }
  if (FLOAT.has(normalized)) return { family: 'float', sql: name };
  if (STRING.has(normalized)) {
    const declaredLength = column.length === undefined || column.length === '' ? undefined : Number(column.length);
    const text = mysql ? TEXT_LENGTH[normalized] : undefined;
    const length = declaredLength ?? defaults.length ?? text;
    const sql = text !== undefined || length === undefined ? name : `${name}(${length})`;
    return { family: 'string', sql, length, padded: PADDED.has(normalized) };
  }
  if (DATETIME.has(normalized) || TIME.has(normalized)) {
    const fsp = precision ?? defaults.precision ?? 0;
    const family = DATETIME.has(normalized) ? 'datetime' : 'time';
    return { family, sql: `${name}(${fsp})`, fsp, zoned: ZONED.has(normalized) };
  }
  if (normalized === 'date') return { family: 'date', sql: name };
  if (normalized === 'boolean') return { family: 'boolean', sql: name };
  // MariaDB's own uuid type orders its values; PostgreSQL has no min() or max() of uuid.
  return { family: 'other', sql: name, comparable: mysql && normalized === 'uuid' };
}

/** Whether `+ - * /`, sum() and avg() take values of this type. */
export function isNumeric(type: ValueType): boolean {
  return type.family === 'integer' || type.family === 'decimal' || type.family === 'float';
}

/** Whether min() and max() take values of this type: numbers, strings, dates and times. */
export function isComparable(type: ValueType): boolean {
  if (type.family === 'other') return type.comparable;
  return type.family !== 'boolean';
}

const INTEGER_VALUE: ValueType = { family: 'integer', sql: 'integer' };

/** A decimal made by arithmetic, named by what is known of it. */
function decimal(scale: number | undefined, exact: boolean): ValueType {
  const sql = !exact ? 'a fractional decimal' : scale === undefined ? 'a decimal of any scale' : `decimal with scale ${scale}`;
  return { family: 'decimal', sql, scale, exact };
}

/** Scale of an exact number (integers: 0); undefined when any. */
function scaleOf(type: ValueType): number | undefined {
  return type.family === 'decimal' ? type.scale : 0;
}

/** A column used in an expression: its type and how to name it (`OrderLine.sku`). */
export interface TypedName {
  readonly type: ValueType;
  readonly label: string;
}

/**
 * The type of an expression: names take their column's type, numbers are integers or decimals of
 * their scale; `+ - * /` and unary minus need numeric operands (an {@link ExpressionError} at the
 * operator names the operand that is not). A float operand makes a float; `/` makes a fractional
 * decimal; otherwise `+` and `-` keep the larger scale and `*` adds the scales, as both databases do.
 */
export function expressionType(expr: Expr, nameType: (name: string, position: number) => TypedName): ValueType {
  return typed(expr, nameType).type;
}

function typed(expr: Expr, nameType: (name: string, position: number) => TypedName): TypedName {
  switch (expr.kind) {
    case 'number': {
      const dot = expr.value.indexOf('.');
      return { type: dot < 0 ? INTEGER_VALUE : decimal(expr.value.length - dot - 1, true), label: expr.value };
    }
    case 'name':
      return nameType(expr.name, expr.position);
    case 'neg': {
      const operand = typed(expr.operand, nameType);
      numericOperand('-', operand, expr.operand.position);
      return { type: operand.type, label: `-${operand.label}` };
    }
    case 'binary': {
      const left = typed(expr.left, nameType);
      const right = typed(expr.right, nameType);
      numericOperand(expr.op, left, expr.left.position);
      numericOperand(expr.op, right, expr.right.position);
      return { type: arithmetic(expr.op, left.type, right.type), label: `(${left.label} ${expr.op} ${right.label})` };
    }
  }
}

function numericOperand(op: string, operand: TypedName, position: number): void {
  if (!isNumeric(operand.type)) {
    throw new ExpressionError(position, `"${op}" needs numeric operands; ${operand.label} is ${operand.type.sql}`);
  }
}

function arithmetic(op: '+' | '-' | '*' | '/', a: ValueType, b: ValueType): ValueType {
  if (a.family === 'float' || b.family === 'float') return { family: 'float', sql: 'a float' };
  if (op === '/') return decimal(undefined, false);
  if ((a.family === 'decimal' && !a.exact) || (b.family === 'decimal' && !b.exact)) return decimal(undefined, false);
  if (a.family === 'integer' && b.family === 'integer') return INTEGER_VALUE;
  const sa = scaleOf(a);
  const sb = scaleOf(b);
  if (sa === undefined || sb === undefined) return decimal(undefined, true);
  return decimal(op === '*' ? sa + sb : Math.max(sa, sb), true);
}
