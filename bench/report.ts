import { table } from './util';

/** A target from the design, the figure measured against it, and whether it was met. Nothing fails on a miss. */
export interface Target {
  part: string;
  what: string;
  measured: number;
  /** The bound, e.g. `>= 4`. */
  target: string;
  met: boolean;
}

/** What a bench part reports besides its own figures. */
export class Report {
  readonly targets: Target[] = [];
  /** Wrong results (recomputes that do not match, mismatched totals): the bench exits 1. */
  readonly failures: string[] = [];

  /** Records `measured` against `>= min`. */
  atLeast(part: string, what: string, measured: number, min: number): void {
    this.targets.push({ part, what, measured, target: `>= ${min}`, met: measured >= min });
  }

  /** Records `measured` against `<= max`. */
  atMost(part: string, what: string, measured: number, max: number): void {
    this.targets.push({ part, what, measured, target: `<= ${max}`, met: measured <= max });
  }

  /** Records wrong results. */
  fail(...failures: string[]): void {
    this.failures.push(...failures);
  }

  /** Prints the targets as a table. */
  printTargets(): void {
    table(
      'targets (medians; reported, never asserted)',
      this.targets.map((t) => ({
        part: t.part,
        figure: t.what,
        measured: t.measured,
        target: t.target,
        met: t.met ? 'yes' : 'NO',
      })),
    );
  }
}
