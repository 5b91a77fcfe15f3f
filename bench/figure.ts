/**
 * A figure measured over several interleaved runs: the median, and the spread (min, max) that
 * says how far one run may be trusted on a machine shared with other work.
 */
export interface Figure {
  median: number;
  min: number;
  max: number;
  /** Runs the figure is taken over. */
  runs: number;
}

/** Median of `values` (0 for none). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The `q` quantile of `values` by nearest rank (0 for none). */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? 0;
}

/** Rounds to `digits` decimals, for figures in JSON. */
export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** The figure of one value per run, rounded to `digits` decimals. */
export function figure(values: readonly number[], digits = 0): Figure {
  return {
    median: round(median(values), digits),
    min: round(values.length === 0 ? 0 : Math.min(...values), digits),
    max: round(values.length === 0 ? 0 : Math.max(...values), digits),
    runs: values.length,
  };
}

/** A figure as one table cell: `median (min-max)`. */
export function cell(f: Figure | null | undefined): string {
  if (!f) return '-';
  const n = (v: number): string => v.toLocaleString('en-US', { maximumFractionDigits: 3 });
  return f.min === f.max ? n(f.median) : `${n(f.median)} (${n(f.min)}-${n(f.max)})`;
}

/** Collects one value per run under a key, in the order the keys first appear. */
export class Samples {
  private readonly values = new Map<string, number[]>();

  /** Adds one run's value of `key`. */
  add(key: string, value: number): void {
    const list = this.values.get(key);
    if (list) list.push(value);
    else this.values.set(key, [value]);
  }

  /** Every value of `key` so far. */
  all(key: string): number[] {
    return this.values.get(key) ?? [];
  }

  /** The figure of `key` (runs 0 when it was never measured). */
  figure(key: string, digits = 0): Figure {
    return figure(this.all(key), digits);
  }
}
