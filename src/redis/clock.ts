/** How often the offset to Redis' clock is measured again (ms of real time). */
const RESYNC_MS = 60_000;

/**
 * The time every process of a namespace agrees on: the local clock plus an offset measured
 * against Redis `TIME` (half a round trip of error), so a host whose own clock is skewed still
 * reads lease deadlines, retry times and quiet periods as the others do. The offset is measured
 * before the first use and again once a minute of real time; between two measurements the local
 * clock's own pace is kept (a test clock that jumps forward jumps the same here).
 */
export class ServerClock {
  private offset = 0;
  private syncedAt = -Infinity;
  private syncing: Promise<void> | undefined;
  /** Settles after the first measurement attempt, successful or not. */
  readonly ready: Promise<void>;
  private markReady: () => void = () => undefined;

  constructor(
    private readonly local: () => number,
    private readonly serverTime: () => Promise<number>,
  ) {
    this.ready = new Promise<void>((resolve) => (this.markReady = resolve));
  }

  /** Now, in ms of server time. */
  now(): number {
    return Math.round(this.local() + this.offset);
  }

  /** Whether the offset has been measured at least once. */
  get synced(): boolean {
    return this.syncedAt > -Infinity;
  }

  /**
   * Measures the offset if it was never measured or is a minute old; one measurement at a time.
   * Rejects when Redis does not answer (the previous offset stays).
   */
  sync(force = false): Promise<void> {
    if (!force && performance.now() - this.syncedAt < RESYNC_MS) return Promise.resolve();
    this.syncing ??= this.measure().finally(() => {
      this.syncing = undefined;
      this.markReady();
    });
    return this.syncing;
  }

  private async measure(): Promise<void> {
    const before = this.local();
    const server = await this.serverTime();
    const after = this.local();
    this.offset = server - (before + after) / 2;
    this.syncedAt = performance.now();
  }
}
