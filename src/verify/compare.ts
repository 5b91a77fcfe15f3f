import type { ColumnMetadata } from '../typeorm-types';

/**
 * Whether a stored derived value equals the expected one, as the database would have stored it.
 * Drivers return numbers, numeric strings ("12.50", bigint counts as "3"), Dates and nulls; the
 * expected value is unrounded (an avg, a sum of a wider type). So numbers compare as decimals,
 * rounded to the column's scale (integers: 0; either rounding of an exact half is accepted),
 * floating-point columns within a relative 1e-6, Dates by time, and null only equals null.
 */
export function sameValue(stored: unknown, expected: unknown, column?: ColumnMetadata): boolean {
  if (stored === null || stored === undefined || expected === null || expected === undefined) {
    return (stored ?? null) === (expected ?? null);
  }
  if (stored instanceof Date || expected instanceof Date) {
    const a = timeOf(stored);
    const b = timeOf(expected);
    return a !== undefined && a === b;
  }
  const kind = column ? kindOf(column) : 'other';
  const a = decimalOf(stored);
  const b = decimalOf(expected);
  if (a && b) {
    if (kind === 'float') return closeFloats(Number(stored), Number(expected));
    const scale = kind === 'integer' ? 0 : kind === 'decimal' ? column?.scale : undefined;
    return sameDecimal(a, b, scale);
  }
  if (typeof stored === 'number' && typeof expected === 'number') return closeFloats(stored, expected);
  if (Buffer.isBuffer(stored) && Buffer.isBuffer(expected)) return stored.equals(expected);
  if (typeof stored === 'boolean' || typeof expected === 'boolean') return Number(stored) === Number(expected);
  return String(stored) === String(expected);
}

type Kind = 'integer' | 'decimal' | 'float' | 'other';
const INTEGER = new Set(['int', 'int2', 'int4', 'int8', 'integer', 'smallint', 'tinyint', 'mediumint', 'bigint']);
const DECIMAL = new Set(['decimal', 'numeric', 'dec', 'fixed']);
const FLOAT = new Set(['float', 'float4', 'float8', 'double', 'double precision', 'real']);

function kindOf(column: ColumnMetadata): Kind {
  if (column.type === Number) return 'integer';
  if (typeof column.type !== 'string') return 'other';
  const type = column.type.toLowerCase();
  if (INTEGER.has(type)) return 'integer';
  if (DECIMAL.has(type)) return 'decimal';
  if (FLOAT.has(type)) return 'float';
  return 'other';
}

interface Decimal {
  /** The value times 10^scale. */
  readonly digits: bigint;
  readonly scale: number;
}

const DECIMAL_TEXT = /^([+-]?)(\d+)(?:\.(\d+))?$/;

function decimalOf(value: unknown): Decimal | undefined {
  if (typeof value === 'bigint') return { digits: value, scale: 0 };
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    // Exponent notation (1e-7, 1e21) is left to the floating-point comparison.
    text = String(value);
  } else if (typeof value === 'string') text = value.trim();
  else return undefined;
  const m = DECIMAL_TEXT.exec(text);
  if (!m) return undefined;
  const fraction = m[3] ?? '';
  const digits = BigInt(`${m[2]}${fraction}`);
  return { digits: m[1] === '-' ? -digits : digits, scale: fraction.length };
}

function sameDecimal(a: Decimal, b: Decimal, scale: number | undefined): boolean {
  const k = Math.max(a.scale, b.scale, scale === undefined ? 0 : scale + 1);
  const x = a.digits * 10n ** BigInt(k - a.scale);
  const y = b.digits * 10n ** BigInt(k - b.scale);
  const diff = x > y ? x - y : y - x;
  if (scale === undefined) return diff === 0n;
  // Within half a unit of the column's last digit: what the database stores when it rounds.
  return diff <= 5n * 10n ** BigInt(k - scale - 1);
}

function closeFloats(a: number, b: number): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b));
}

function timeOf(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'string' || typeof value === 'number') {
    const t = new Date(value).getTime();
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}
