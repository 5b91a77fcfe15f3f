export interface Watch {
  readonly until: number;
  readonly fire: () => void;
}

/**
 * Times out recomputes with one shared timer rather than one per recompute: it ticks only
 * while something is watched, at a tenth of the timeout (10 ms to 250 ms), so a timeout fires
 * within that much after `timeoutMs`.
 */
export class Watchdog {
  private readonly watches = new Set<Watch>();
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;

  constructor(private readonly timeoutMs: number) {
    this.tickMs = Math.min(250, Math.max(10, Math.floor(timeoutMs / 10)));
  }

  watch(fire: () => void): Watch {
    const watch = { until: performance.now() + this.timeoutMs, fire };
    this.watches.add(watch);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), this.tickMs);
      this.timer.unref();
    }
    return watch;
  }

  unwatch(watch: Watch): void {
    this.watches.delete(watch);
    if (this.watches.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private check(): void {
    const now = performance.now();
    for (const watch of this.watches) {
      if (watch.until <= now) {
        this.unwatch(watch);
        watch.fire();
      }
    }
  }
}
