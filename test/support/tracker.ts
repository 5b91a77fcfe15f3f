/**
 * Counts recomputes per member across every worker of a test, in the order they end, and records
 * any two at once of one member (the "one at a time" guarantee).
 */
export class Tracker {
  readonly counts = new Map<string, number>();
  readonly order: string[] = [];
  readonly overlaps: string[] = [];
  private readonly running = new Set<string>();

  /** Runs `work` (or waits `work` ms) as a recompute of `member`. */
  async around(member: string, work: number | (() => Promise<void>) = 0): Promise<void> {
    if (this.running.has(member)) this.overlaps.push(member);
    this.running.add(member);
    try {
      if (typeof work === 'function') await work();
      else if (work > 0) await new Promise((resolve) => setTimeout(resolve, work));
      this.counts.set(member, (this.counts.get(member) ?? 0) + 1);
      this.order.push(member);
    } finally {
      this.running.delete(member);
    }
  }

  /** Recomputes of `member` that ended. */
  of(member: string): number {
    return this.counts.get(member) ?? 0;
  }

  get total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }
}
