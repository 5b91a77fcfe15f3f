import type { Redis } from 'ioredis';
import { keysFor } from '../src/redis/keys';
import { quantile, round } from './figure';
import { sleep } from './util';

/** Ms from a commit to its parent's mark in Redis, relayed from the outbox. */
export interface RelayFigures {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export const relayFigures = (ms: readonly number[]): RelayFigures => ({
  samples: ms.length,
  p50Ms: round(quantile(ms, 0.5), 1),
  p99Ms: round(quantile(ms, 0.99), 1),
  maxMs: round(ms.length === 0 ? 0 : Math.max(...ms), 1),
});

/**
 * Runs `commit` (a write the triggers capture, committed when it resolves), then times until
 * `member` is pending in `namespace`: the relay's latency, read every millisecond (so within
 * about 1 ms). Throws after `timeoutMs`.
 */
export async function relayLatency(
  redis: Redis,
  namespace: string,
  member: string,
  commit: () => Promise<unknown>,
  timeoutMs = 30_000,
): Promise<number> {
  const pending = keysFor(namespace).pending;
  await commit();
  const t = performance.now();
  while ((await redis.zscore(pending, member)) === null) {
    if (performance.now() - t > timeoutMs) throw new Error(`${member} not relayed within ${timeoutMs} ms`);
    await sleep(1);
  }
  return performance.now() - t;
}
