import type { ValueType } from '../aggregates/types';
import { dayOf } from './compare';

/**
 * A stored value and its expected one as the column's type holds them, both the same way, so
 * that a drift example never shows a number beside a string (drivers give an `int` as a number
 * and a `count()` as text):
 * - integers as numbers, or both as exact decimal text when one is not a safe integer (an
 *   average in an integer column, a bigint beyond 2^53);
 * - floating-point numbers as numbers; decimals as exact decimal text (`"12.50"`);
 * - date-times as Dates (ISO in JSON), dates as `YYYY-MM-DD`, times as text;
 * - booleans as booleans (MySQL's 0/1 too), text as text; null as null.
 * A value that is not of the column's kind (a host's `expected` returning something else) is
 * left as it is.
 */
export function asColumnValues(stored: unknown, expected: unknown, type: ValueType): [unknown, unknown] {
  const pair: [unknown, unknown] = [stored ?? null, expected ?? null];
  const each = (convert: (value: unknown) => unknown): [unknown, unknown] =>
    pair.map((v) => (v === null ? null : (convert(v) ?? v))) as [unknown, unknown];
  switch (type.family) {
    case 'integer': {
      const given = pair.filter((v) => v !== null);
      return given.every((v) => integerOf(v) !== undefined) ? each(integerOf) : each(decimalText);
    }
    case 'float':
      return each((v) => (decimalText(v) === undefined ? undefined : Number(v)));
    case 'decimal':
      return each(decimalText);
    case 'datetime':
      return each((v) => {
        const d = v instanceof Date ? v : typeof v === 'string' || typeof v === 'number' ? new Date(v) : undefined;
        return d && !Number.isNaN(d.getTime()) ? d : undefined;
      });
    case 'date':
      return each(dayOf);
    case 'time':
      return each((v) => (typeof v === 'string' ? v.trim() : undefined));
    case 'boolean':
      return each((v) => {
        if (typeof v === 'boolean') return v;
        const n = Number(v);
        return typeof v !== 'object' && (n === 0 || n === 1) ? n === 1 : undefined;
      });
    case 'string':
      return each((v) => (typeof v === 'number' || typeof v === 'bigint' ? String(v) : undefined));
    default:
      return pair;
  }
}

/** A value of a drift example in one line, for people: numbers bare, text quoted, dates ISO. */
export function showValue(value: unknown): string {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Buffer.isBuffer(value)) return `0x${value.toString('hex')}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

const DECIMAL_TEXT = /^[+-]?\d+(?:\.\d+)?$/;

/** A number as exact decimal text (`"12.50"` stays as written); undefined when it is not a number. */
function decimalText(value: unknown): string | undefined {
  if (typeof value === 'bigint') return String(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    const text = String(value);
    // Exponent notation (1e21, 1e-7) written out.
    if (!/e/i.test(text)) return text;
    return Number.isInteger(value) ? BigInt(value).toString() : value.toFixed(20).replace(/\.?0+$/, '');
  }
  if (typeof value === 'string' && DECIMAL_TEXT.test(value.trim())) return value.trim();
  return undefined;
}

/** A whole number as a JS number when it is one exactly (`"54"`, `"3.000"`); else undefined. */
function integerOf(value: unknown): number | undefined {
  const text = decimalText(value);
  if (text === undefined || !/^[+-]?\d+(?:\.0+)?$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}
