import type { ValueType } from '../aggregates/types';

/**
 * Whether a stored derived value equals the expected one, as the database would have stored it
 * in `column` (the parent column's type; without it values compare exactly). Drivers return
 * numbers, numeric strings ("12.50", bigint counts as "3"), Dates, time strings and nulls; the
 * expected value is unrounded (an avg, a sum of a wider type, a host's JS Date). So a value the
 * column cannot hold more exactly is never a difference:
 * - numbers compare as decimals rounded to the column's scale (integers: 0; either rounding of
 *   an exact half is accepted), floating-point columns within a relative 1e-6;
 * - dates and times at the column's fractional-second precision (cut, as MariaDB does, or
 *   rounded, as PostgreSQL and MySQL do), given `value`, the expected value's own type (a JS
 *   Date holds milliseconds); date columns by the day;
 * - `char(n)` strings without their padding;
 * and null only equals null.
 */
export function sameValue(stored: unknown, expected: unknown, column?: ValueType, value?: ValueType): boolean {
  if (stored === null || stored === undefined || expected === null || expected === undefined) {
    return (stored ?? null) === (expected ?? null);
  }
  const family = column?.family;
  if (family === 'date') return sameDay(stored, expected);
  if (column && (column.family === 'datetime' || column.family === 'time')) {
    const precise = sameTemporal(stored, expected, column.fsp, value);
    if (precise !== undefined) return precise;
  }
  if (stored instanceof Date || expected instanceof Date) {
    const a = timeOf(stored);
    const b = timeOf(expected);
    return a !== undefined && a === b;
  }
  if (column?.family === 'string' && column.padded && typeof stored === 'string' && typeof expected === 'string') {
    return stored.trimEnd() === expected.trimEnd();
  }
  const scale = family === 'integer' ? 0 : column?.family === 'decimal' ? column.scale : undefined;
  const rounds = family === 'integer' || family === 'decimal';
  const a = decimalOf(stored, rounds);
  const b = decimalOf(expected, rounds);
  if (a && b) {
    if (family === 'float') return closeFloats(Number(stored), Number(expected));
    return sameDecimal(a, b, scale);
  }
  if (typeof stored === 'number' && typeof expected === 'number') return closeFloats(stored, expected);
  if (Buffer.isBuffer(stored) && Buffer.isBuffer(expected)) return stored.equals(expected);
  if (typeof stored === 'boolean' || typeof expected === 'boolean') return Number(stored) === Number(expected);
  return String(stored) === String(expected);
}

interface Decimal {
  /** The value times 10^scale. */
  readonly digits: bigint;
  readonly scale: number;
}

const DECIMAL_TEXT = /^([+-]?)(\d+)(?:\.(\d+))?$/;

/** A number as an exact decimal; `expand`: numbers in exponent notation too (for a column that rounds them). */
function decimalOf(value: unknown, expand: boolean): Decimal | undefined {
  if (typeof value === 'bigint') return { digits: value, scale: 0 };
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    text = String(value);
    // Exponent notation (1e-7, 1e21) is left to the floating-point comparison, unless the column
    // rounds: a float written to a decimal column.
    if (expand && /e/i.test(text)) text = Number.isInteger(value) ? BigInt(value).toString() : value.toFixed(20);
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

/**
 * Dates and times at `fsp` digits of seconds; undefined when a value is not one (then they
 * compare as other values do). Date-times are JS Dates (milliseconds, the driver having cut
 * further digits); times are strings, read to the microsecond.
 */
function sameTemporal(stored: unknown, expected: unknown, fsp: number, value: ValueType | undefined): boolean | undefined {
  const times = microsOfTime(stored);
  if (times !== undefined) {
    const e = microsOfTime(expected);
    return e !== undefined && cutOrRounded(times, e, fsp, 6, 0);
  }
  const a = timeOf(stored);
  const b = timeOf(expected);
  if (a === undefined || b === undefined) return undefined;
  if (a === b) return true;
  // A value no finer than the column was stored as it was: any difference is real.
  const finest = value?.family === 'datetime' ? value.fsp : 3;
  if (finest <= fsp) return false;
  return cutOrRounded(a, b, fsp, 3, 1);
}

/**
 * Whether `stored` is `expected` cut or rounded (half up) to `fsp` digits of seconds; both in
 * units of 10^-digits s, `expected` possibly short of the truth by less than `slack` units.
 */
function cutOrRounded(stored: number, expected: number, fsp: number, digits: number, slack: number): boolean {
  const unit = fsp >= digits ? 1 : 10 ** (digits - fsp);
  const candidates = [expected, expected + slack].flatMap((e) => [
    Math.floor(e / unit) * unit,
    Math.floor((e + unit / 2) / unit) * unit,
  ]);
  return candidates.includes(stored);
}

const TIME_TEXT = /^(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

/** A time of day (`HH:MM:SS.ffffff`, MySQL's negative and long ones too) in microseconds. */
function microsOfTime(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TIME_TEXT.exec(value.trim());
  if (!m) return undefined;
  const seconds = Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
  const micros = seconds * 1_000_000 + Number((m[5] ?? '').padEnd(6, '0'));
  return m[1] === '-' ? -micros : micros;
}

/** The calendar day of a date: `YYYY-MM-DD` text as written, a Date (drivers give local midnight) by its local day. */
function sameDay(stored: unknown, expected: unknown): boolean {
  const a = dayOf(stored);
  return a !== undefined && a === dayOf(expected);
}

/** The calendar day of a date value (`YYYY-MM-DD`), or undefined when it is not one. */
export function dayOf(value: unknown): string | undefined {
  if (typeof value === 'string') return /^\d{4}-\d{2}-\d{2}/.exec(value.trim())?.[0];
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) return undefined;
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${value.getFullYear()}-${pad(value.getMonth() + 1)}-${pad(value.getDate())}`;
}
