/** How failed recomputes are retried. */
export interface RetryOptions {
  /**
   * Attempts in all, the first included; after the last one the parent is dead-lettered.
   * @defaultValue 5
   */
  attempts: number;
  /**
   * Delay before the second attempt; each further one doubles it.
   * @defaultValue 1000
   */
  baseMs: number;
  /**
   * Longest delay between two attempts.
   * @defaultValue 60000
   */
  maxMs: number;
}

/**
 * Delay before attempt `failed + 1`: exponential from `baseMs`, capped at `maxMs`, with full
 * jitter over its upper half so that parents failing together do not retry together.
 */
export function backoffMs(failed: number, retry: RetryOptions, random: () => number = Math.random): number {
  const exp = Math.min(retry.maxMs, retry.baseMs * 2 ** Math.max(0, failed - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}
