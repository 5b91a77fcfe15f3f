import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { DataSource } from 'typeorm';
import { resolveOptions } from '../../src/config';
import { backoffMs } from '../../src/drain/backoff';
import { percentile } from '../../src/ops/stats';
import { ConfigError } from '../../src';

// Enough of a DataSource for option checks, which never touch it.
const dataSource = { getMetadata: () => undefined } as unknown as DataSource;
const ok = { dataSource, redis: 'redis://127.0.0.1:6379' };

describe('resolveOptions', () => {
  it('fills defaults and freezes the result', () => {
    const o = resolveOptions(ok);
    expect(o).toMatchObject({
      namespace: 'coalesce',
      leaseMs: 10_000,
      recomputeTimeoutMs: 60_000,
      markTimeoutMs: 1_000,
      delivery: 'redis',
      onRedisLoss: 'rebuild',
    });
    expect(resolveOptions({ ...ok, delivery: 'outbox' }).onRedisLoss).toBe('warn');
    expect(o.retry).toEqual({ attempts: 5, baseMs: 1_000, maxMs: 60_000 });
    expect(Object.isFrozen(o)).toBe(true);
  });

  it.each([
    [{ leaseMs: 0 }, /"leaseMs" = 0/],
    [{ leaseMs: 1.5 }, /"leaseMs" = 1.5/],
    [{ namespace: 'has space' }, /"namespace" = "has space": must be 1-64 characters/],
    [{ namespace: '' }, /"namespace" = ""/],
    [{ leaseMs: 99 }, /"leaseMs" = 99/],
    [{ leaseMS: 5_000 }, /unknown option "leaseMS": did you mean "leaseMs"\?/],
    [{ retry: { attemps: 3 } }, /unknown option "retry.attemps": did you mean "retry.attempts"\?/],
    [{ logger: console }, /"logger": expected a pino logger .* it has no child \(console is not one/],
    [{ onRedisLoss: 'panic' }, /"onRedisLoss" = "panic"/],
    [{ clock: 5 }, /"clock": expected a function/],
    [{ retry: { attempts: 0 } }, /"retry.attempts" = 0/],
    [{ retry: { baseMs: 5_000, maxMs: 1_000 } }, /"retry.maxMs" = 1000: must be at least retry.baseMs/],
    [{ maxWaitMs: -1 }, /"maxWaitMs" = -1/],
    [{ redis: 'localhost:6379' }, /"redis" = "localhost:6379": expected a redis:\/\/ or rediss:\/\/ URL/],
    [{ redis: 42 }, /"redis" = 42: expected a redis:\/\/ URL, an ioredis client or an ioredis Cluster/],
    [{ dataSource: {} }, /"dataSource": expected a TypeORM DataSource/],
  ])('rejects %o naming the option and the value', (bad, message) => {
    expect(() => resolveOptions({ ...ok, ...(bad as object) } as never)).toThrow(ConfigError);
    expect(() => resolveOptions({ ...ok, ...(bad as object) } as never)).toThrow(message);
  });
});

describe('backoffMs', () => {
  const retry = { attempts: 5, baseMs: 100, maxMs: 1_000 };
  it('doubles from baseMs, capped at maxMs, jittered over its upper half', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (failed, r) => {
        const exp = Math.min(1_000, 100 * 2 ** (failed - 1));
        const ms = backoffMs(failed, retry, () => r);
        return ms >= Math.floor(exp / 2) && ms <= exp;
      }),
    );
    expect(backoffMs(1, retry, () => 0.999)).toBe(100);
    expect(backoffMs(20, retry, () => 0)).toBe(500);
  });
});

describe('percentile', () => {
  it('is the nearest-rank quantile, null for no values', () => {
    expect(percentile([], 0.5)).toBeNull();
    expect(percentile([5], 0.99)).toBe(5);
    expect(percentile([4, 1, 3, 2], 0.5)).toBe(2);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        0.99,
      ),
    ).toBe(99);
  });
});
