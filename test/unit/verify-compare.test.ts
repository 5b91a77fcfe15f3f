import { describe, expect, it } from 'vitest';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';
import { sameValue } from '../../src/verify/compare';

const col = (type: unknown, scale?: number): ColumnMetadata => ({ type, scale }) as unknown as ColumnMetadata;

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
});
