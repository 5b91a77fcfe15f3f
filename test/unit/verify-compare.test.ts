import { describe, expect, it } from 'vitest';
import type { ValueType } from '../../src/aggregates/types';
import { sameValue } from '../../src/verify/compare';
import { asColumnValues, showValue } from '../../src/verify/show';

// A parent column's type as registration resolves it from the metadata (src/aggregates/types.ts,
// tested on both drivers in aggregate-types.test.ts).
const col = (type: unknown, scale?: number): ValueType => {
  if (type === Number || type === 'int') return { family: 'integer', sql: 'int' };
  if (type === 'decimal' || type === 'numeric') return { family: 'decimal', sql: `${type}(12,${scale})`, scale, exact: true };
  return { family: 'float', sql: String(type) };
};
const datetime = (fsp: number): ValueType => ({ family: 'datetime', sql: `datetime(${fsp})`, fsp, zoned: false });
const time = (fsp: number): ValueType => ({ family: 'time', sql: `time(${fsp})`, fsp, zoned: false });

describe('verify: stored and expected values compare as the database stores them', () => {
  it('null only equals null', () => {
    expect(sameValue(null, null)).toBe(true);
    expect(sameValue(undefined, null)).toBe(true);
    expect(sameValue(0, null)).toBe(false);
    expect(sameValue(null, '0')).toBe(false);
  });
  it('numbers and numeric strings as decimals', () => {
    expect(sameValue(3, '3')).toBe(true);
    expect(sameValue('12.50', '12.5000')).toBe(true);
    expect(sameValue('12.50', 12.5)).toBe(true);
    expect(sameValue('12.50', '12.51')).toBe(false);
    expect(sameValue('-0.00', 0)).toBe(true);
    expect(sameValue('123456789012345678901234', '123456789012345678901235')).toBe(false);
    expect(sameValue(4n, '4')).toBe(true);
  });
  it('rounded to the column: integers, decimals with a scale (either rounding of an exact half)', () => {
    expect(sameValue(3, '2.5', col('int'))).toBe(true);
    expect(sameValue(2, '2.5', col('int'))).toBe(true);
    expect(sameValue(2, '2.51', col('int'))).toBe(false);
    expect(sameValue('2.33', '2.3333333333', col('decimal', 2))).toBe(true);
    expect(sameValue('2.34', '2.3333333333', col('numeric', 2))).toBe(false);
    expect(sameValue('2.33', '2.3333333333')).toBe(false);
    expect(sameValue(7, '7', col(Number))).toBe(true);
  });
  it('floating-point columns within 1e-6 relative', () => {
    expect(sameValue(3.3333333, '3.33333333333333', col('real'))).toBe(true);
    expect(sameValue(3.33, '3.33333333333333', col('double precision'))).toBe(false);
    expect(sameValue(1e-7, 1.0000000001e-7)).toBe(true);
  });
  it('dates by time, strings exactly', () => {
    expect(sameValue(new Date(1000), new Date(1000))).toBe(true);
    expect(sameValue(new Date(1000), new Date(1001))).toBe(false);
    expect(sameValue(new Date('2024-01-01T00:00:00Z'), '2024-01-01T00:00:00Z')).toBe(true);
    expect(sameValue('abc', 'abc')).toBe(true);
    expect(sameValue('abc', 'ABC')).toBe(false);
    expect(sameValue(true, 1)).toBe(true);
  });
  it('a decimal column rounds a float given in exponent notation; unrounded, such floats compare as floats', () => {
    expect(sameValue('0.00', 1e-7, col('decimal', 2))).toBe(true);
    expect(sameValue('0.01', 1e-7, col('decimal', 2))).toBe(false);
    expect(sameValue('100000000000000000000000', 1e23, col('decimal', 0))).toBe(false);
    expect(sameValue('99999999999999991611392', 1e23, col('decimal', 0))).toBe(true);
    expect(sameValue(1e-7, 1.0000000001e-7, col('real'))).toBe(true);
  });
  it('a decimal without a fixed scale (PostgreSQL numeric) compares exactly', () => {
    const any: ValueType = { family: 'decimal', sql: 'numeric', scale: undefined, exact: true };
    expect(sameValue('2.3333333333', '2.3333333333', any)).toBe(true);
    expect(sameValue('2.33', '2.3333333333', any)).toBe(false);
  });
  it('date-times at the column precision: cut (MariaDB) or rounded (PostgreSQL, MySQL), never a real difference', () => {
    const at = (s: string): Date => new Date(`2024-06-01T12:00:${s}Z`);
    // An aggregate of datetime(6) values written to a datetime(0) column.
    expect(sameValue(at('01'), at('01.600'), datetime(0), datetime(6))).toBe(true);
    expect(sameValue(at('02'), at('01.600'), datetime(0), datetime(6))).toBe(true);
    expect(sameValue(at('02'), at('01.400'), datetime(0), datetime(6))).toBe(false);
    expect(sameValue(at('03'), at('01.600'), datetime(0), datetime(6))).toBe(false);
    expect(sameValue(at('00'), at('01.600'), datetime(0), datetime(6))).toBe(false);
    expect(sameValue(at('01.100'), at('01.123'), datetime(1), datetime(6))).toBe(true);
    expect(sameValue(at('01.120'), at('01.123'), datetime(2), datetime(6))).toBe(true);
    expect(sameValue(at('01.130'), at('01.123'), datetime(2), datetime(6))).toBe(false);
    // The driver keeps milliseconds: at 3 to 5 digits the stored one may be a millisecond on.
    expect(sameValue(at('01.124'), at('01.123'), datetime(3), datetime(6))).toBe(true);
    expect(sameValue(at('01.125'), at('01.123'), datetime(3), datetime(6))).toBe(false);
    // A value no finer than the column was stored as it was: any difference is drift.
    expect(sameValue(at('02'), at('01.600'), datetime(6), datetime(6))).toBe(false);
    expect(sameValue(at('01.124'), at('01.123'), datetime(6), datetime(6))).toBe(false);
    expect(sameValue(at('01.124'), at('01.123'), datetime(3), datetime(3))).toBe(false);
    // A host's expected() gives JS Dates: milliseconds.
    expect(sameValue(at('01'), at('01.600'), datetime(0))).toBe(true);
    expect(sameValue(at('01.124'), at('01.123'), datetime(3))).toBe(false);
    expect(sameValue(at('01'), null, datetime(0))).toBe(false);
  });
  it('times at the column precision, to the microsecond; date columns by the day', () => {
    expect(sameValue('12:00:01', '12:00:00.500001', time(0))).toBe(true);
    expect(sameValue('12:00:00', '12:00:00.500001', time(0))).toBe(true);
    expect(sameValue('12:00:00.1235', '12:00:00.123456', time(4))).toBe(true);
    expect(sameValue('12:00:00.1236', '12:00:00.123456', time(4))).toBe(false);
    expect(sameValue('12:00:00.123456', '12:00:00.123457', time(6))).toBe(false);
    expect(sameValue('-838:59:59', '-838:59:59', time(0))).toBe(true);
    const day: ValueType = { family: 'date', sql: 'date' };
    expect(sameValue('2024-06-01', '2024-06-01', day)).toBe(true);
    expect(sameValue(new Date(2024, 5, 1), new Date(2024, 5, 1, 15, 30), day)).toBe(true);
    expect(sameValue(new Date(2024, 5, 1), '2024-06-01', day)).toBe(true);
    expect(sameValue(new Date(2024, 5, 2), '2024-06-01', day)).toBe(false);
  });
  it('char(n) strings without their padding', () => {
    const char: ValueType = { family: 'string', sql: 'char(6)', length: 6, padded: true };
    const varchar: ValueType = { family: 'string', sql: 'varchar(6)', length: 6, padded: false };
    expect(sameValue('ab    ', 'ab', char)).toBe(true);
    expect(sameValue('ab', 'ab ', char)).toBe(true);
    expect(sameValue('ab    ', 'ab', varchar)).toBe(false);
    expect(sameValue(' ab', 'ab', char)).toBe(false);
  });
});

describe("verify: a drift example gives both values as the column's type holds them", () => {
  const day: ValueType = { family: 'date', sql: 'date' };
  const bool: ValueType = { family: 'boolean', sql: 'boolean' };
  const text: ValueType = { family: 'string', sql: 'varchar(20)', length: 20, padded: false };
  it('integers as numbers, or both as exact text when one is not a whole safe integer', () => {
    // An int column read as a number, a count() read as text.
    expect(asColumnValues(999, '54', col('int'))).toEqual([999, 54]);
    expect(asColumnValues('7', 4n, col('int'))).toEqual([7, 4]);
    expect(asColumnValues(3, null, col('int'))).toEqual([3, null]);
    // An average stored in an integer column, a bigint past 2^53.
    expect(asColumnValues(2, '2.5000000000000000', col('int'))).toEqual(['2', '2.5000000000000000']);
    expect(asColumnValues('9007199254740993', 1, col('int'))).toEqual(['9007199254740993', '1']);
  });
  it('decimals as exact text, floats as numbers', () => {
    expect(asColumnValues('12.50', 13, col('numeric', 2))).toEqual(['12.50', '13']);
    expect(asColumnValues(' 12.50', '12.555', col('numeric', 2))).toEqual(['12.50', '12.555']);
    expect(asColumnValues(1e21, '1', col('numeric', 0))).toEqual(['1000000000000000000000', '1']);
    expect(asColumnValues('1.5', 2.25, col('double precision'))).toEqual([1.5, 2.25]);
  });
  it('date-times as Dates, dates as days, booleans, text', () => {
    const at = new Date('2024-06-01T10:00:00.123Z');
    expect(asColumnValues(at, '2024-06-01T10:00:00.000Z', datetime(3))).toEqual([at, new Date('2024-06-01T10:00:00.000Z')]);
    expect(asColumnValues(new Date(2024, 5, 1), '2024-06-02', day)).toEqual(['2024-06-01', '2024-06-02']);
    expect(asColumnValues(1, false, bool)).toEqual([true, false]);
    expect(asColumnValues('abc', 12, text)).toEqual(['abc', '12']);
    expect(asColumnValues('12:00:00', '12:00:01.5', time(1))).toEqual(['12:00:00', '12:00:01.5']);
  });
  it('in one line: numbers bare, text quoted, dates ISO', () => {
    expect([999, '12.50', new Date('2024-06-01T10:00:00.123Z'), null, true].map(showValue)).toEqual([
      '999',
      '"12.50"',
      '2024-06-01T10:00:00.123Z',
      'null',
      'true',
    ]);
  });
});
