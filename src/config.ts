import type { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from './log';
import { z } from 'zod';
import { ConfigError } from './errors';
import { isValidNamespace } from './redis/keys';
import type { RetryOptions } from './drain/backoff';

/** Options of a {@link Coalescer}. */
export interface CoalescerOptions {
  /** An initialized TypeORM DataSource holding the parent and child entities. */
  dataSource: DataSource;
  /** A Redis URL (`redis://host:port/db`) or an ioredis client. A client you pass is not closed by `close()`. */
  redis: string | Redis;
  /**
   * Key prefix; one namespace is one independent coalescer. Letters, digits, `_`, `-`, `.`.
   * @defaultValue 'coalesce'
   */
  namespace?: string;
  /** A pino logger, or any logger of the same shape (`CoalesceLogger`); by default warnings and errors go to stderr. */
  logger?: Logger;
  /**
   * How long a claim lasts before the parent is given back to pending (a crashed worker's
   * parents come back after this).
   * @defaultValue 30000
   */
  leaseMs?: number;
  /**
   * A recompute running longer is aborted (its `signal` fires) and counts as failed. Must be
   * shorter than `leaseMs`.
   * @defaultValue leaseMs / 2
   */
  recomputeTimeoutMs?: number;
  /** Retry of failed recomputes; see {@link RetryOptions}. */
  retry?: Partial<RetryOptions>;
  /**
   * Longest a mark may wait for Redis after a commit before it is treated as undelivered, so a
   * host's save is never held long when Redis is down.
   * @defaultValue 1000
   */
  markTimeoutMs?: number;
  /**
   * Longest a parent waits from its first mark to its claim before it is claimed ahead of any
   * hotter one (no starvation under a hot storm). Each parent type may override it.
   * @defaultValue none: hottest first, always
   */
  maxWaitMs?: number;
  /**
   * Whether a host's save waits for Redis to take the transaction's marks. By default it does
   * not: the marks go out right after COMMIT in the background (one round trip per transaction,
   * failures to the outbox), so the save path costs no Redis round trip. `flushed()` waits for
   * marks in flight, and `close()` does too.
   * @defaultValue false
   */
  awaitMarks?: boolean;
  /**
   * How marks reach Redis. `'redis'`: sent after the commit, and kept in the outbox table only
   * when Redis does not take them. `'outbox'`: also written to the outbox inside the host's
   * transaction (one multi-row insert before COMMIT), so even a process killed right after
   * COMMIT loses nothing; the rows are deleted once Redis has the marks.
   * @defaultValue 'redis'
   */
  delivery?: 'redis' | 'outbox';
  /**
   * Table of undelivered marks (created by the CoalesceOutbox migration), in the DataSource's schema.
   * @defaultValue 'coalesce_outbox'
   */
  outboxTable?: string;
  /** Source of time in ms; tests pass their own. @defaultValue Date.now */
  clock?: () => number;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  readonly dataSource: DataSource;
  readonly redis: string | Redis;
  readonly namespace: string;
  readonly logger: Logger | undefined;
  readonly leaseMs: number;
  readonly recomputeTimeoutMs: number;
  readonly retry: Readonly<RetryOptions>;
  readonly markTimeoutMs: number;
  readonly maxWaitMs: number | undefined;
  readonly delivery: 'redis' | 'outbox';
  readonly awaitMarks: boolean;
  readonly outboxTable: string;
  readonly clock: () => number;
}

/** Defaults of every optional option. */
export const DEFAULTS = Object.freeze({
  namespace: 'coalesce',
  leaseMs: 30_000,
  markTimeoutMs: 1_000,
  retry: Object.freeze({ attempts: 5, baseMs: 1_000, maxMs: 60_000 }),
});

const ms = (min: number, max: number) => z.number().int().min(min).max(max);

const schema = z.object({
  namespace: z.string().refine(isValidNamespace, 'must be 1-64 characters of letters, digits, "_", "-" or "."'),
  leaseMs: ms(100, 86_400_000),
  recomputeTimeoutMs: ms(10, 86_400_000).optional(),
  markTimeoutMs: ms(10, 60_000),
  maxWaitMs: ms(0, 86_400_000).optional(),
  delivery: z.enum(['redis', 'outbox']),
  awaitMarks: z.boolean(),
  outboxTable: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain table name (letters, digits, "_")'),
  retry: z.object({
    attempts: z.number().int().min(1).max(1000),
    baseMs: ms(0, 86_400_000),
    maxMs: ms(0, 86_400_000),
  }),
});

/** Turns a zod failure into one ConfigError naming the option, the value and what is allowed. */
export function configError(
  // Structural rather than z.ZodError: the emitted declarations must not need zod's types, which
  // a host's older TypeScript may not compile.
  error: { readonly issues: readonly { readonly path: readonly PropertyKey[]; readonly message: string }[] },
  input: unknown,
  what = 'option',
): ConfigError {
  const lines = error.issues.map((issue) => {
    const path = issue.path.join('.');
    const value = issue.path.reduce<unknown>(
      (v, key) => (v as Record<PropertyKey, unknown> | undefined)?.[key as PropertyKey],
      input,
    );
    return `${what} "${path}" = ${JSON.stringify(value) ?? String(value)}: ${issue.message}`;
  });
  return new ConfigError(`invalid ${lines.join('; ')}`);
}

/** Validates options and fills defaults; a bad option throws a ConfigError naming it. */
export function resolveOptions(options: CoalescerOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new ConfigError('Coalescer options must be an object');
  const ds = options.dataSource as DataSource | undefined;
  if (!ds || typeof ds.getMetadata !== 'function') {
    throw new ConfigError('invalid option "dataSource": expected a TypeORM DataSource');
  }
  const redis = options.redis as unknown;
  if (
    typeof redis !== 'string' &&
    (redis === null || typeof redis !== 'object' || typeof (redis as Redis).duplicate !== 'function')
  ) {
    throw new ConfigError(
      `invalid option "redis" = ${JSON.stringify(redis) ?? String(redis)}: expected a redis:// URL or an ioredis client`,
    );
  }
  if (typeof redis === 'string' && !/^rediss?:\/\//.test(redis)) {
    throw new ConfigError(`invalid option "redis" = ${JSON.stringify(redis)}: expected a redis:// or rediss:// URL`);
  }
  const input = {
    namespace: options.namespace ?? DEFAULTS.namespace,
    leaseMs: options.leaseMs ?? DEFAULTS.leaseMs,
    recomputeTimeoutMs: options.recomputeTimeoutMs,
    markTimeoutMs: options.markTimeoutMs ?? DEFAULTS.markTimeoutMs,
    maxWaitMs: options.maxWaitMs,
    delivery: options.delivery ?? 'redis',
    awaitMarks: options.awaitMarks ?? false,
    outboxTable: options.outboxTable ?? 'coalesce_outbox',
    retry: { ...DEFAULTS.retry, ...options.retry },
  };
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw configError(parsed.error, input);
  const v = parsed.data;
  const recomputeTimeoutMs = v.recomputeTimeoutMs ?? Math.floor(v.leaseMs / 2);
  if (recomputeTimeoutMs >= v.leaseMs) {
    throw new ConfigError(
      `invalid option "recomputeTimeoutMs" = ${recomputeTimeoutMs}: must be less than leaseMs (${v.leaseMs}), or a slow recompute would outlive its lease`,
    );
  }
  if (v.retry.maxMs < v.retry.baseMs) {
    throw new ConfigError(`invalid option "retry.maxMs" = ${v.retry.maxMs}: must be at least retry.baseMs (${v.retry.baseMs})`);
  }
  return Object.freeze({
    dataSource: ds,
    redis: options.redis,
    namespace: v.namespace,
    logger: options.logger,
    leaseMs: v.leaseMs,
    recomputeTimeoutMs,
    retry: Object.freeze(v.retry),
    markTimeoutMs: v.markTimeoutMs,
    maxWaitMs: v.maxWaitMs,
    delivery: v.delivery,
    awaitMarks: v.awaitMarks,
    outboxTable: v.outboxTable,
    clock: options.clock ?? Date.now,
  });
}
