import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { EntityTarget, ObjectLiteral } from 'typeorm';
import type { Logger } from 'pino';
import { resolveOptions, type CoalescerOptions, type ResolvedOptions } from './config';
import { defaultLogger } from './log';
import { ConfigError, ConnectionError, RegistrationError, errorMessage } from './errors';
import { keysFor } from './redis/keys';
import { Store, type DeadEntry } from './redis/store';
import { Registry, heatOf, type ChildOptions, type ParentId, type ParentOptions } from './registry';
import { Marker, addMark, type MarkerStats } from './capture/marker';
import { CaptureSubscriber } from './capture/subscriber';
import { Outbox } from './capture/outbox';
import { Drainer, type DrainOptions, type DrainResult, type FailedEvent, type RecomputedEvent } from './drain/drainer';
import { Runner, type RunnerOptions } from './runner/runner';
import { verifyParent, type VerifyOptions, type VerifyResult } from './verify/verifier';

/** Events a Coalescer emits. */
export interface CoalescerEvents {
  recomputed: [RecomputedEvent];
  failed: [FailedEvent];
  /** After each `drain()` that completed (a runner's ticks included), with what it did. */
  drained: [DrainResult];
  /** After each `verify()`, with what it found. */
  verified: [VerifyResult];
}

/** Sizes and ages of one namespace. */
export interface CoalescerStats {
  /** Parents waiting to be recomputed. */
  pending: number;
  /** Parents claimed by a worker right now. */
  inflight: number;
  /** Failed parents waiting for their retry. */
  delayed: number;
  /** Dead-lettered parents. */
  dead: number;
  /** Leases past their deadline not yet given back (a crashed or stuck worker). */
  expired: number;
  /** Parents in their quiet period (settleMs), not claimable yet. */
  settling: number;
  /** Parents waiting longer than their maxWaitMs, claimed first by the next drain. */
  overdue: number;
  /** Age in ms of the oldest first mark among parents waiting for a recompute, or null when none waits. */
  oldestPendingMs: number | null;
  /** Wait from first mark to recompute start over the last (up to 1000) recomputes, in ms. */
  wait: { samples: number; p50Ms: number | null; p99Ms: number | null };
  /** Marks waiting in the outbox table to be relayed to Redis (null when the table is missing). */
  outbox: number | null;
  /** What this process's marker sent. */
  marker: Readonly<MarkerStats>;
}

/** A pending parent with its heat. */
export interface HotParent {
  member: string;
  heat: number;
}

/** Dead-letter operations. */
export interface DeadLetters {
  /** Dead parents, oldest first. */
  list(options?: { offset?: number; limit?: number }): Promise<DeadEntry[]>;
  /** Gives dead parents a fresh start (back to pending with their heat). */
  retry(members: string | readonly string[] | 'all'): Promise<number>;
  /** Removes dead parents for good. */
  purge(members: string | readonly string[] | 'all'): Promise<number>;
}

/** Dead parents handled per script call by `retry('all')` / `purge('all')`. */
const DEAD_BATCH = 500;

let workerSeq = 0;

/**
 * Keeps derived data on parent rows fresh: marks parents when their children change and
 * recomputes each marked parent once, in the background.
 */
export class Coalescer extends EventEmitter<CoalescerEvents> {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  /** This coalescer's worker in log lines: `host:pid:n`. */
  readonly worker = `${hostname()}:${process.pid}:${(workerSeq += 1)}`;
  readonly registry: Registry;
  readonly store: Store;
  private readonly redis: Redis;
  private readonly markerRedis: Redis;
  private readonly ownsRedis: boolean;
  private readonly marker: Marker;
  private readonly drainer: Drainer;
  /** The durable outbox of marks Redis did not take. */
  readonly outbox: Outbox;
  private redisChecked = false;
  private subscriber: CaptureSubscriber | undefined;
  private policiesWritten: Promise<void> | undefined;
  private closed = false;

  constructor(options: CoalescerOptions) {
    super();
    this.options = resolveOptions(options);
    const o = this.options;
    this.logger = (o.logger ?? defaultLogger()).child({ namespace: o.namespace });
    // The marker's client fails fast: a save must never wait long on an unreachable Redis.
    const failFast = { maxRetriesPerRequest: 1, commandTimeout: o.markTimeoutMs, connectTimeout: o.markTimeoutMs };
    if (typeof o.redis === 'string') {
      this.redis = new Redis(o.redis, { maxRetriesPerRequest: 3, lazyConnect: false });
      this.markerRedis = new Redis(o.redis, failFast);
      this.ownsRedis = true;
    } else {
      this.redis = o.redis;
      this.markerRedis = o.redis.duplicate(failFast);
      this.ownsRedis = false;
    }
    for (const client of [this.redis, this.markerRedis]) {
      // Connection errors surface on the commands that fail; keep them out of 'error' crashes.
      client.on('error', (err: Error) => this.logger.debug({ err: err.message }, 'redis connection error'));
    }
    this.registry = new Registry(o.dataSource, { maxWaitMs: o.maxWaitMs });
    this.store = new Store(this.redis, keysFor(o.namespace));
    this.marker = new Marker(new Store(this.markerRedis, this.store.keys), this.logger, o.clock, o.awaitMarks);
    this.outbox = new Outbox(o.dataSource, o.namespace, this.store, this.logger, o.clock, o.outboxTable);
    this.marker.onUndelivered(async (entries, error) => {
      try {
        await this.outbox.write(entries);
        this.logger.warn(
          { err: errorMessage(error), marks: entries.length },
          'Redis did not take the marks: kept in the outbox, the next drain relays them',
        );
      } catch (outboxError) {
        this.outbox.explainMissingTable(outboxError);
        this.logger.error(
          { err: errorMessage(error), outbox: errorMessage(outboxError), marks: entries.map((e) => e.member) },
          'marks could not be sent nor kept: these parents stay stale until marked again (coalesce mark / rebuild)',
        );
      }
    });
    this.drainer = new Drainer(
      this.store,
      this.registry,
      o.dataSource,
      { leaseMs: o.leaseMs, recomputeTimeoutMs: o.recomputeTimeoutMs, retry: o.retry },
      // Every drain line (failures, recompute loggers) says which worker wrote it.
      this.logger.child({ worker: this.worker }),
      { recomputed: (e) => this.report('recomputed', e), failed: (e) => this.report('failed', e) },
      o.clock,
    );
  }

  /** Emits an event; a host's listener that throws is logged, never taken for a failed recompute. */
  private report<E extends keyof CoalescerEvents>(event: E, ...args: CoalescerEvents[E]): void {
    try {
      (this.emit as (event: E, ...args: CoalescerEvents[E]) => boolean)(event, ...args);
    } catch (error) {
      this.logger.error({ err: errorMessage(error), event }, 'an event listener threw; ignored');
    }
  }

  /** The namespace's key prefix. */
  get namespace(): string {
    return this.options.namespace;
  }

  /** Registers a parent type and how to recompute it. */
  parent<Id extends ParentId = ParentId>(target: EntityTarget<ObjectLiteral>, options: ParentOptions<Id>): this {
    this.registry.addParent(target, options as ParentOptions);
    this.policiesWritten = undefined;
    return this;
  }

  /** Registers a child whose changes make `options.parent` stale; once per parent of the child. */
  child(target: EntityTarget<ObjectLiteral>, options: ChildOptions): this {
    this.registry.addChild(target, options);
    return this;
  }

  /** Registers the capture subscriber on the DataSource. Idempotent. */
  attach(): Promise<void> {
    const ds = this.options.dataSource;
    if (!ds.isInitialized) {
      return Promise.reject(new ConfigError('attach(): the DataSource is not initialized; call dataSource.initialize() first'));
    }
    if (this.registry.parentNames().length === 0) {
      return Promise.reject(new RegistrationError('attach(): no parent registered; call parent() and child() first'));
    }
    if (!this.subscriber) {
      this.subscriber = new CaptureSubscriber(
        this.registry,
        this.marker,
        this.logger,
        this.options.delivery === 'outbox' ? this.outbox : undefined,
      );
      ds.subscribers.push(this.subscriber);
    }
    // The host must start even when Redis is down; the policies go out with the next drain or mark.
    return Promise.all([
      this.publishPolicies().catch((error: unknown) => {
        this.logger.warn({ err: errorMessage(error) }, 'attach(): Redis did not answer; parent policies will be published later');
      }),
      this.checkRedisSettings(),
    ]).then(() => undefined);
  }

  /**
   * Warns once when Redis may lose marks: an eviction policy other than noeviction drops
   * pending parents under memory pressure, and without persistence a restart loses them. Both
   * leave parents stale with nobody told. CONFIG may be disabled: then nothing is said.
   */
  private async checkRedisSettings(): Promise<void> {
    if (this.redisChecked) return;
    this.redisChecked = true;
    try {
      const [policy, aof, save] = await Promise.all(
        ['maxmemory-policy', 'appendonly', 'save'].map(async (name) => ((await this.redis.config('GET', name)) as string[])[1]),
      );
      if (policy !== undefined && policy !== 'noeviction') {
        this.logger.warn(
          { maxmemoryPolicy: policy },
          'Redis maxmemory-policy is not noeviction: under memory pressure Redis may evict pending parents, which then stay stale',
        );
      }
      if (aof === 'no' && (save === '' || save === undefined)) {
        this.logger.warn(
          {},
          'Redis has no persistence (appendonly no, no save points): a Redis restart loses pending marks; run `coalesce rebuild` after one',
        );
      }
    } catch {
      // CONFIG is often disabled on managed Redis: nothing to say then.
    }
  }

  /** Relays the marks waiting in the outbox to Redis; returns how many. Also done at the start of every drain. */
  async relayOutbox(): Promise<number> {
    try {
      return await this.outbox.relay();
    } catch (error) {
      if (this.outbox.explainMissingTable(error)) return 0;
      throw error;
    }
  }

  /**
   * Publishes each parent type's priority, settleMs and maxWaitMs to Redis, where the scripts
   * read them (so marks sent by any process, or relayed later, follow them). Once per
   * registration; a failure is retried on the next call.
   */
  private publishPolicies(): Promise<void> {
    this.policiesWritten ??= this.store
      .writePolicies(
        new Map(this.registry.parentTypes().map((t) => [t.name, { base: t.base, settleMs: t.settleMs, maxWaitMs: t.maxWaitMs }])),
      )
      .catch((error: unknown) => {
        this.policiesWritten = undefined;
        throw error;
      });
    return this.policiesWritten;
  }

  /** Unregisters the capture subscriber. */
  detach(): void {
    if (!this.subscriber) return;
    const list = this.options.dataSource.subscribers;
    const at = list.indexOf(this.subscriber);
    if (at >= 0) list.splice(at, 1);
    this.subscriber = undefined;
  }

  /**
   * Marks parents explicitly, for changes the subscriber cannot see (QueryBuilder or repository
   * bulk update/delete, raw SQL). Call it after the change commits. Returns the number of
   * distinct parents marked; never throws for an unreachable Redis (the marks are handed on
   * like the subscriber's).
   */
  async mark(target: EntityTarget<ObjectLiteral> | string, ids: ParentId | readonly ParentId[]): Promise<number> {
    const parent = this.registry.parentOf(target);
    const batch = new Map<string, { member: string; increment: number; base: number }>();
    for (const id of Array.isArray(ids) ? ids : [ids]) {
      addMark(batch, { member: this.registry.encode(parent, id), increment: 1, base: parent.base });
    }
    // Without the policies a settling type's marks would go straight to pending; an
    // unreachable Redis is the marker's to handle, so that failure is left to it.
    await this.publishPolicies().catch(() => undefined);
    await this.marker.send([...batch.values()]);
    return batch.size;
  }

  /**
   * Resolves when every mark the subscriber has started to send (they go out in the background
   * unless `awaitMarks`) has reached Redis or the outbox.
   */
  flushed(): Promise<void> {
    return this.marker.settled();
  }

  /** Claims, recomputes and acknowledges pending parents until none is left or a bound is hit. */
  drain(options: DrainOptions = {}): Promise<DrainResult> {
    const { concurrency = 1, max, window, maxMs } = options;
    const check = (name: string, value: number | undefined, min: number): void => {
      if (value !== undefined && (!Number.isInteger(value) || value < min)) {
        throw new ConfigError(`invalid drain option "${name}" = ${String(value)}: expected an integer >= ${min}`);
      }
    };
    check('concurrency', concurrency, 1);
    check('max', max, 0);
    check('window', window, 1);
    check('maxMs', maxMs, 0);
    // This process's own marks still in flight belong to this drain.
    return Promise.all([this.marker.settled(), this.publishPolicies()])
      .then(() =>
        this.relayOutbox().catch((error: unknown) => {
          // Redis or PostgreSQL is failing; the drain will say which. The rows are kept.
          this.logger.warn({ err: errorMessage(error) }, 'outbox relay failed; its marks stay in the outbox');
        }),
      )
      .then(() => this.drainer.drain(options))
      .then((result) => {
        this.report('drained', result);
        return result;
      });
  }

  /**
   * Compares a parent type's stored derived fields with what its aggregates (or its `expected`)
   * compute: every row by primary key, a random `sample`, or the given `ids`. Parents with a
   * recompute pending or running are skipped, not reported; `repair` marks the drifted ones.
   */
  async verify(target: EntityTarget<ObjectLiteral> | string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const parent = this.registry.parentOf(target);
    const result = await verifyParent(
      {
        dataSource: this.options.dataSource,
        registry: this.registry,
        store: this.store,
        mark: (name, ids) => this.mark(name, ids),
        recheckMs: this.options.markTimeoutMs,
        clock: this.options.clock,
      },
      parent,
      options,
    );
    this.report('verified', result);
    return result;
  }

  /** A runner that drains this coalescer on a node-cron schedule; call `start()` on it. */
  runner(options: RunnerOptions = {}): Runner {
    return new Runner(this, options);
  }

  /** Gives back to pending the parents this process is recomputing now (a shutdown that will not wait). */
  releaseInflight(): Promise<number> {
    return this.drainer.releaseInflight();
  }

  /** Gives back expired leases and promotes due retries without draining. */
  requeue(): Promise<{ reaped: number; promoted: number }> {
    return this.drainer.requeue();
  }

  /** Sizes of the namespace's sets and the age of the oldest pending mark. */
  async stats(): Promise<CoalescerStats> {
    const now = this.options.clock();
    const [c, waits, outbox] = await Promise.all([
      this.store.counts(now),
      this.store.recentWaits(),
      this.outbox.size().catch(() => null),
    ]);
    return {
      pending: c.pending,
      inflight: c.inflight,
      delayed: c.delayed,
      dead: c.dead,
      expired: c.expired,
      settling: c.settling,
      overdue: c.overdue,
      oldestPendingMs: c.oldestSince === undefined ? null : Math.max(0, now - c.oldestSince),
      wait: { samples: waits.length, p50Ms: percentile(waits, 0.5), p99Ms: percentile(waits, 0.99) },
      outbox,
      marker: { ...this.marker.stats },
    };
  }

  /** The `n` hottest pending parents. */
  async hottest(n = 10): Promise<HotParent[]> {
    return (await this.store.top(n)).map(({ member, score }) => ({ member, heat: heatOf(score) }));
  }

  /** Dead-lettered parents: list, retry, purge. */
  readonly dead: DeadLetters = {
    list: ({ offset = 0, limit = 100 } = {}) => this.store.listDead(offset, limit),
    retry: (members) => this.eachDeadBatch(members, (batch) => this.store.revive(batch, this.options.clock(), DEAD_BATCH)),
    purge: (members) => this.eachDeadBatch(members, (batch) => this.store.purge(batch, DEAD_BATCH)),
  };

  private async eachDeadBatch(
    members: string | readonly string[] | 'all',
    run: (batch: readonly string[] | 'all') => Promise<number>,
  ): Promise<number> {
    if (members !== 'all') return run(typeof members === 'string' ? [members] : members);
    let total = 0;
    for (let n = DEAD_BATCH; n === DEAD_BATCH; total += n) n = await run('all');
    return total;
  }

  /** Redis and PostgreSQL answer; throws a ConnectionError naming the one that does not. */
  async ping(): Promise<void> {
    try {
      await this.redis.ping();
    } catch (error) {
      throw new ConnectionError(`cannot reach Redis: ${(error as Error).message}`, { cause: error });
    }
    try {
      await this.options.dataSource.query('SELECT 1');
    } catch (error) {
      throw new ConnectionError(`cannot reach PostgreSQL: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Detaches the subscriber and closes the Redis connections this coalescer opened. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    await this.marker.settled();
    await this.drainer.close(this.options.recomputeTimeoutMs);
    await quit(this.markerRedis);
    if (this.ownsRedis) await quit(this.redis);
  }
}

/** The `q` quantile of `values` (nearest rank), or null when there are none. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}

async function quit(client: Redis): Promise<void> {
  try {
    if (client.status === 'ready') await client.quit();
    else client.disconnect();
  } catch {
    client.disconnect();
  }
}
