import type { Cluster, Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from './log';
import { z } from 'zod';
import { ConfigError } from './errors';
import { isValidNamespace } from './redis/keys';
import type { RetryOptions } from './drain/backoff';
import { RELAY_POLL, type RelayPollOptions } from './delivery/poller';

/** Options of a {@link Coalescer}. */
export interface CoalescerOptions {
  /** A TypeORM DataSource (PostgreSQL, MySQL or MariaDB) holding the parent and child entities. */
  dataSource: DataSource;
  /**
   * A Redis URL (`redis://host:port/db`), an ioredis client, or an ioredis Cluster. A client you
   * pass is not closed by `close()`.
   */
  redis: string | Redis | Cluster;
  /**
   * Key prefix; one namespace is one independent coalescer. Letters, digits, `_`, `-`, `.`.
   * @defaultValue 'coalesce'
   */
  namespace?: string;
  /** A pino logger, or any logger of the same shape (`CoalesceLogger`: `child`, `debug`, `info`, `warn`, `error`); by default warnings and errors go to stderr. */
  logger?: Logger;
  /**
   * How long a claim lasts without renewal. A worker renews the leases of the parents it holds
   * every third of this while their recomputes run, however long they take; a crashed worker's
   * parents come back to pending this long after its last renewal.
   * @defaultValue 10000
   */
  leaseMs?: number;
  /**
   * A recompute running longer is aborted (its `signal` fires with a RecomputeTimeoutError) and
   * counts as failed. Independent of `leaseMs`: leases are renewed while it runs.
   * @defaultValue 60000
   */
  recomputeTimeoutMs?: number;
  /** Retry of failed recomputes; see {@link RetryOptions}. */
  retry?: Partial<RetryOptions>;
  /**
   * Longest a mark may wait for Redis after a commit (connecting included) before it is treated
   * as undelivered and kept in the outbox, so a host's save is never held long when Redis is down.
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
   * Shortest time between two recomputes of a parent that keeps being marked: a parent marked
   * again while it is recomputed waits this long after that recompute before the next one (in its
   * quiet period, never past maxWaitMs), so a hot parent under sustained writes is recomputed at
   * most about once per interval instead of back to back. A parent marked while idle is claimed
   * at once. A runner's drains leave such parents for a later tick; `drain()` recomputes them
   * before it returns. 0 turns it off. Each parent type may override it.
   * @defaultValue 500
   */
  minIntervalMs?: number;
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
   * COMMIT loses nothing; the rows stay until their parents are recomputed, so a Redis that
   * loses its data gets them again.
   * @defaultValue 'redis'
   */
  delivery?: 'redis' | 'outbox';
  /**
   * What to do when Redis lost the namespace's data (its epoch is gone): `'rebuild'` marks every
   * row of every registered parent type, a bounded number per drain, so no change stays lost;
   * `'warn'` only logs it. The outbox is sent again either way.
   * @defaultValue 'rebuild' with delivery 'redis', 'warn' with delivery 'outbox' (its rows cover every change)
   */
  onRedisLoss?: 'rebuild' | 'warn';
  /**
   * Table of undelivered marks (created by the library migrations), in the DataSource's schema.
   * @defaultValue 'coalesce_outbox'
   */
  outboxTable?: string;
  /**
   * How often the relay polls the outbox for rows written by trigger capture (children
   * registered with capture 'triggers'; see {@link RelayPollOptions}): every `minMs` while rows
   * keep coming, backing off to `maxMs` when none come. A poll is one index probe.
   * @defaultValue { minMs: 10, maxMs: 200 }
   */
  relayPoll?: Partial<RelayPollOptions>;
  /**
   * Local source of time in ms. The coalescer adds the offset it measures against Redis' clock
   * (at start, then once a minute), so every process reads leases and deadlines alike.
   * @defaultValue Date.now
   */
  clock?: () => number;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  readonly dataSource: DataSource;
  readonly redis: string | Redis | Cluster;
  readonly namespace: string;
  readonly logger: Logger | undefined;
  readonly leaseMs: number;
  readonly recomputeTimeoutMs: number;
  readonly retry: Readonly<RetryOptions>;
  readonly markTimeoutMs: number;
  readonly maxWaitMs: number | undefined;
  readonly minIntervalMs: number;
  readonly delivery: 'redis' | 'outbox';
  readonly onRedisLoss: 'rebuild' | 'warn';
  readonly awaitMarks: boolean;
  readonly outboxTable: string;
  readonly relayPoll: Readonly<RelayPollOptions>;
  readonly clock: () => number;
}

/** Defaults of every optional option. */
export const DEFAULTS = Object.freeze({
  namespace: 'coalesce',
  leaseMs: 10_000,
  recomputeTimeoutMs: 60_000,
  markTimeoutMs: 1_000,
  minIntervalMs: 500,
  retry: Object.freeze({ attempts: 5, baseMs: 1_000, maxMs: 60_000 }),
  relayPoll: RELAY_POLL,
});

const OPTION_NAMES = [
  'dataSource',
  'redis',
  'namespace',
  'logger',
  'leaseMs',
  'recomputeTimeoutMs',
  'retry',
  'markTimeoutMs',
  'maxWaitMs',
  'minIntervalMs',
  'awaitMarks',
  'delivery',
  'onRedisLoss',
  'outboxTable',
  'relayPoll',
  'clock',
] as const satisfies readonly (keyof CoalescerOptions)[];

const ms = (min: number, max: number) => z.number().int().min(min).max(max);

const schema = z.object({
  namespace: z.string().refine(isValidNamespace, 'must be 1-64 characters of letters, digits, "_", "-" or "."'),
  leaseMs: ms(100, 86_400_000),
  recomputeTimeoutMs: ms(10, 86_400_000),
  markTimeoutMs: ms(10, 60_000),
  maxWaitMs: ms(0, 86_400_000).optional(),
  minIntervalMs: ms(0, 86_400_000),
  delivery: z.enum(['redis', 'outbox']),
  onRedisLoss: z.enum(['rebuild', 'warn']),
  awaitMarks: z.boolean(),
  outboxTable: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain table name (letters, digits, "_")'),
  retry: z.object({
    attempts: z.number().int().min(1).max(1000),
    baseMs: ms(0, 86_400_000),
    maxMs: ms(0, 86_400_000),
  }),
  relayPoll: z.object({
    minMs: ms(1, 60_000),
    maxMs: ms(1, 600_000),
  }),
});

/** Turns a zod failure into one ConfigError naming the option, the value and what is allowed. */
export function configError(
  // Structural rather than z.ZodError: the emitted declarations must not need zod's types, which
  // a host's older TypeScript may not compile. (Unknown keys are caught before: rejectUnknownKeys.)
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

/** The known name closest to `name` (edit distance, case-insensitive), if one is close enough to be a typo. */
export function closest(name: string, known: readonly string[]): string | undefined {
  const a = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const b = candidate.toLowerCase();
    const row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i += 1) {
      let prev = row[0] as number;
      row[0] = i;
      for (let j = 1; j <= b.length; j += 1) {
        const tmp = row[j] as number;
        row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = tmp;
      }
    }
    const d = row[b.length] as number;
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * Throws a ConfigError for a key of `options` that is not in `known`, with the closest valid
 * name; `prefix` names the object the keys are in (`retry.`).
 */
export function rejectUnknownKeys(options: object, known: readonly string[], what = 'option', prefix = ''): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const hint = closest(key, known);
    throw new ConfigError(
      `unknown ${what} "${prefix}${key}"${hint ? `: did you mean "${prefix}${hint}"?` : ''} (known: ${known.map((k) => prefix + k).join(', ')})`,
    );
  }
}

const LOGGER_METHODS = ['child', 'debug', 'info', 'warn', 'error'] as const;

/** Validates options and fills defaults; a bad option throws a ConfigError naming it. */
export function resolveOptions(options: CoalescerOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new ConfigError('Coalescer options must be an object');
  rejectUnknownKeys(options, OPTION_NAMES);
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
      `invalid option "redis" = ${JSON.stringify(redis) ?? String(redis)}: expected a redis:// URL, an ioredis client or an ioredis Cluster`,
    );
  }
  if (typeof redis === 'string' && !/^rediss?:\/\//.test(redis)) {
    throw new ConfigError(`invalid option "redis" = ${JSON.stringify(redis)}: expected a redis:// or rediss:// URL`);
  }
  const logger = options.logger as unknown;
  if (logger !== undefined) {
    const missing = LOGGER_METHODS.filter((m) => typeof (logger as Record<string, unknown> | null)?.[m] !== 'function');
    if (missing.length > 0) {
      throw new ConfigError(
        `invalid option "logger": expected a pino logger (with ${LOGGER_METHODS.join(', ')}); it has no ${missing.join(', ')}` +
          (logger === console ? ' (console is not one: pass pino() or leave the option out)' : ''),
      );
    }
  }
  if (options.retry !== undefined) {
    if (options.retry === null || typeof options.retry !== 'object') {
      throw new ConfigError(`invalid option "retry" = ${JSON.stringify(options.retry)}: expected { attempts, baseMs, maxMs }`);
    }
    rejectUnknownKeys(options.retry, ['attempts', 'baseMs', 'maxMs'], 'option', 'retry.');
  }
  if (options.relayPoll !== undefined) {
    if (options.relayPoll === null || typeof options.relayPoll !== 'object') {
      throw new ConfigError(`invalid option "relayPoll" = ${JSON.stringify(options.relayPoll)}: expected { minMs, maxMs }`);
    }
    rejectUnknownKeys(options.relayPoll, ['minMs', 'maxMs'], 'option', 'relayPoll.');
  }
  const delivery = options.delivery ?? 'redis';
  const input = {
    namespace: options.namespace ?? DEFAULTS.namespace,
    leaseMs: options.leaseMs ?? DEFAULTS.leaseMs,
    recomputeTimeoutMs: options.recomputeTimeoutMs ?? DEFAULTS.recomputeTimeoutMs,
    markTimeoutMs: options.markTimeoutMs ?? DEFAULTS.markTimeoutMs,
    maxWaitMs: options.maxWaitMs,
    minIntervalMs: options.minIntervalMs ?? DEFAULTS.minIntervalMs,
    delivery,
    onRedisLoss: options.onRedisLoss ?? (delivery === 'outbox' ? 'warn' : 'rebuild'),
    awaitMarks: options.awaitMarks ?? false,
    outboxTable: options.outboxTable ?? 'coalesce_outbox',
    retry: { ...DEFAULTS.retry, ...options.retry },
    relayPoll: { ...DEFAULTS.relayPoll, ...options.relayPoll },
  };
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw configError(parsed.error, input);
  const v = parsed.data;
  if (v.retry.maxMs < v.retry.baseMs) {
    throw new ConfigError(`invalid option "retry.maxMs" = ${v.retry.maxMs}: must be at least retry.baseMs (${v.retry.baseMs})`);
  }
  if (v.relayPoll.maxMs < v.relayPoll.minMs) {
    throw new ConfigError(
      `invalid option "relayPoll.maxMs" = ${v.relayPoll.maxMs}: must be at least relayPoll.minMs (${v.relayPoll.minMs})`,
    );
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') {
    throw new ConfigError(`invalid option "clock": expected a function returning ms, got ${typeof options.clock}`);
  }
  return Object.freeze({
    dataSource: ds,
    redis: options.redis,
    namespace: v.namespace,
    logger: options.logger,
    leaseMs: v.leaseMs,
    recomputeTimeoutMs: v.recomputeTimeoutMs,
    retry: Object.freeze(v.retry),
    markTimeoutMs: v.markTimeoutMs,
    maxWaitMs: v.maxWaitMs,
    minIntervalMs: v.minIntervalMs,
    delivery: v.delivery,
    onRedisLoss: v.onRedisLoss,
    awaitMarks: v.awaitMarks,
    outboxTable: v.outboxTable,
    relayPoll: Object.freeze(v.relayPoll),
    clock: options.clock ?? Date.now,
  });
}
