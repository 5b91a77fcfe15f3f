import type { EntityMetadata } from 'typeorm';
import { RegistrationError } from '../errors';
import type { ColumnMetadata } from '../typeorm-types';
import { ExpressionError, type Expr } from './expression';
import type { AggregateKind } from './spec';
import { expressionType, isComparable, isNumeric, type TypedName, type ValueType } from './types';

/** One declared aggregate, as registration checks its types. */
export interface TypedAggregate {
  /** `aggregate "total" of Order`, to open errors with. */
  readonly what: string;
  readonly kind: AggregateKind;
  readonly child: EntityMetadata;
  /** The expression's text and parse; undefined for a count of rows. */
  readonly expression: { readonly text: string; readonly parsed: Expr } | undefined;
  /** The type of a child column (used for the expression's names). */
  readonly columnType: (column: ColumnMetadata) => ValueType;
  readonly parent: EntityMetadata;
  /** The parent's column the aggregate writes, and its type. */
  readonly column: ColumnMetadata;
  readonly target: ValueType;
}

/**
 * The type of an aggregate's value, checked against its function and its parent column: sum()
 * and avg() need numbers, min() and max() values that order (numbers, strings, dates and times),
 * and the column must hold the value without cutting it (a scale, a length, fractional seconds)
 * unless the value has no end of digits anyway (an average, a quotient, a float: rounded at the
 * column's scale, as verify knows). A mismatch is a RegistrationError naming the field, its
 * column and type, the child's expression and type, and the fix.
 */
export function aggregateType(a: TypedAggregate): ValueType {
  const field = `${a.parent.name}.${a.column.propertyPath}`;
  const call = a.expression ? `${a.kind}(${a.child.name}, '${a.expression.text}')` : `${a.kind}(${a.child.name})`;
  const columnName = a.column.databaseName === a.column.propertyPath ? '' : `column ${a.column.databaseName}, `;
  const fail = (message: string): RegistrationError =>
    new RegistrationError(`${a.what}: ${call} into ${field} (${columnName}${a.target.sql}): ${message}`);

  let input: TypedName | undefined;
  if (a.expression) {
    const { parsed } = a.expression;
    try {
      const type = expressionType(parsed, (name) => {
        const column = a.child.findColumnWithPropertyPathStrict(name) as ColumnMetadata;
        return { type: a.columnType(column), label: `${a.child.name}.${name}` };
      });
      input = { type, label: parsed.kind === 'name' ? `${a.child.name}.${parsed.name}` : `'${a.expression.text}'` };
    } catch (error) {
      if (error instanceof ExpressionError) throw fail(error.message);
      throw error;
    }
  }

  const value = valueOf(a.kind, input, fail);
  const subject =
    a.kind === 'count' || a.kind === 'avg' || !input ? `${a.kind}() is ${value.sql}` : `${input.label} is ${value.sql}`;
  const misfit = misfitOf(value, a.target, field);
  if (misfit) throw fail(`${subject}, ${misfit}`);
  return value;
}

/** The type of the aggregate's value; the function's own demands on its input. */
function valueOf(kind: AggregateKind, input: TypedName | undefined, fail: (m: string) => RegistrationError): ValueType {
  if (kind === 'count' || !input) return { family: 'integer', sql: 'an integer' };
  const { type, label } = input;
  if (kind === 'sum' || kind === 'avg') {
    if (!isNumeric(type)) throw fail(`${kind}() needs a numeric expression; ${label} is ${type.sql}`);
    if (kind === 'sum' || type.family === 'float') return type;
    return { family: 'decimal', sql: 'a fractional decimal', scale: undefined, exact: false };
  }
  if (!isComparable(type)) {
    const hint = type.family === 'boolean' ? ` (count the true ones with count() and where)` : '';
    throw fail(`${kind}() needs numbers, strings, dates or times; ${label} is ${type.sql}${hint}`);
  }
  return type;
}

/** Why `target` cannot hold values of type `value` without changing them, and the fix; undefined when it can. */
function misfitOf(value: ValueType, target: ValueType, field: string): string | undefined {
  const base = (sql: string): string => sql.replace(/\(.*$/, '');
  switch (value.family) {
    case 'integer':
      return isNumeric(target)
        ? undefined
        : `but the column is not numeric; declare ${field} as an integer, decimal or float column`;
    case 'decimal': {
      if (target.family === 'float') return undefined;
      if (!value.exact) {
        if (target.family === 'decimal') return undefined;
        const what = target.family === 'integer' ? 'which an integer column would round' : 'but the column is not numeric';
        return `${what}; declare ${field} as decimal (rounded at its scale) or float`;
      }
      if (
        target.family === 'decimal' &&
        (target.scale === undefined || (value.scale !== undefined && target.scale >= value.scale))
      )
        return undefined;
      const what = isNumeric(target) ? 'which the column would round' : 'but the column is not numeric';
      if (value.scale === undefined) {
        return `${what}; declare ${field} as numeric without precision and scale, or give the child's column a precision and scale`;
      }
      return `${what}; declare ${field} as decimal with scale >= ${value.scale}`;
    }
    case 'float':
      if (target.family === 'float' || target.family === 'decimal') return undefined;
      return `${target.family === 'integer' ? 'which an integer column would round' : 'but the column is not numeric'}; declare ${field} as float (or decimal, rounded at its scale)`;
    case 'string': {
      const wanted = value.length === undefined ? 'as text' : `with length >= ${value.length}`;
      if (target.family !== 'string') return `but the column is not a string; declare ${field} ${wanted}`;
      if (target.length === undefined || (value.length !== undefined && target.length >= value.length)) return undefined;
      return `which the column would cut; declare ${field} ${wanted}`;
    }
    case 'datetime':
    case 'time': {
      const kind = value.family === 'datetime' ? 'a date and time' : 'a time of day';
      if (target.family !== value.family) {
        const what = target.family === 'date' ? 'whose time of day a date column drops' : `but the column is not ${kind}`;
        return `${what}; declare ${field} with type: '${base(value.sql)}', precision: ${value.fsp}`;
      }
      if (target.zoned !== value.zoned) {
        return `and a ${base(target.sql)} column would shift it by the session's time zone; declare ${field} with type: '${base(value.sql)}'`;
      }
      if (target.fsp < value.fsp)
        return `whose fractional seconds the column would cut; declare ${field} with precision: ${value.fsp}`;
      return undefined;
    }
    case 'date':
      return target.family === 'date' ? undefined : `but the column is not a date; declare ${field} with type: 'date'`;
    case 'boolean':
    case 'other':
      return target.sql === value.sql
        ? undefined
        : `but the column is not ${value.sql}; declare ${field} with type: '${value.sql}'`;
  }
}
