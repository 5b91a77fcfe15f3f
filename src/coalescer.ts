import { EventEmitter } from 'node:events';
import type { EntityTarget, ObjectLiteral } from 'typeorm';
import type { CoalesceLogger as Logger } from './log';
import { resolveOptions, type CoalescerOptions, type ResolvedOptions } from './config';
import { CoalesceError, ConfigError, RegistrationError, errorMessage, onRedis, redisUnreachable } from './errors';
import { assemble, type Parts } from './assemble';
import type { Children, CoalescerEvents } from './types';
import { dialectOf } from './db/dialect';
import { quit } from './redis/connect';
import type { Keys } from './redis/keys';
import type { Reads } from './redis/reads';
import type { ServerClock } from './redis/clock';
import type { ChildOptions, EntityClass, ParentId, ParentOptions } from './registry/model';
import type { Registry } from './registry/registry';
import { registerDeclared } from './registry/declared';
import { CaptureSubscriber } from './capture/subscriber';
import type { Outbox } from './delivery/outbox';
import { checkDrainOptions, type DrainOptions, type DrainResult } from './drain/types';
import type { CoalescerStats, HotParent } from './ops/stats';
import type { DeadLetters } from './ops/dead-letters';
import type { LiveEvent, Subscription } from './fresh/events';
import type { FreshOptions } from './fresh/fresh';
import type { ParentState } from './fresh/state';
import type { TriggerStatements } from './triggers/spec';
import type { MigrationClass, MigrationFormat, TriggerMigrationOptions, TriggerMigrationSource } from './triggers/migrations';
import { verifyParent, type VerifyOptions, type VerifyResult } from './verify/verifier';
import { Runner, type RunnerOptions } from './runner/runner';

export type { CoalescerStats, HotParent } from './ops/stats';
export type { DeadLetters } from './ops/dead-letters';
export type { CoalescerEvents } from './types';

/**
 * Keeps derived data on parent rows fresh: marks parents when their children change and
 * recomputes each marked parent once, in the background. Its parts are built by `assemble()`;
 * this class delegates to them.
 */
export class Coalescer extends EventEmitter<CoalescerEvents> {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  /** This coalescer's worker in log lines: `host:pid:n`. */
  readonly worker: string;
  readonly registry: Registry;
  /** The namespace's keys in Redis. */
  readonly keys: Keys;
  /** Reads of the namespace in Redis that change nothing (sizes, hottest, one parent's state). */
  readonly reads: Reads;
  /** The namespace's clock: local time corrected against Redis'. */
  readonly clock: ServerClock;
  /** The durable outbox of marks. */
  readonly outbox: Outbox;
  /** Dead-lettered parents: list, retry, purge. */
  readonly dead: DeadLetters;
  private readonly parts: Parts;
  private subscriber: CaptureSubscriber | undefined;
  private closed = false;

  constructor(options: CoalescerOptions) {
    super();
    this.options = resolveOptions(options);
    this.parts = assemble(this.options, {
      recomputed: (e) => this.report('recomputed', e),
      failed: (e) => this.report('failed', e),
      drained: (r) => this.report('drained', r),
    });
    ({ logger: this.logger, worker: this.worker, registry: this.registry, keys: this.keys } = this.parts);
    ({ reads: this.reads, clock: this.clock, outbox: this.outbox, dead: this.dead } = this.parts);
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

  /** Where Redis is, for messages: `host:port` or the cluster's nodes. */
  get redisAddress(): string {
    return this.parts.clients.where;
  }

  /** Registers a parent type, how to recompute it, and which of its columns are derived. */
  parent<Id extends ParentId = ParentId>(target: EntityTarget<ObjectLiteral>, options: ParentOptions<Id>): this {
    this.registry.addParent(target, options as ParentOptions);
    this.parts.policies.invalidate();
    return this;
  }

  /** Registers a child whose changes make `options.parent` stale; once per parent of the child. */
  child(target: EntityTarget<ObjectLiteral>, options: ChildOptions): this {
    this.registry.addChild(target, options);
    return this;
  }

  /** Registers the entities with `@Aggregate` columns (default: all of the DataSource's), their children and chains. */
  entities(targets?: readonly EntityClass[]): this {
    registerDeclared(this.registry, this.options.dataSource, targets);
    this.parts.policies.invalidate();
    return this;
  }

  /**
   * A TypeORM migration class installing trigger capture (PostgreSQL, MySQL or MariaDB) for
   * `children` (default: every child registered with capture 'triggers'); `down()` drops the triggers.
   */
  triggerMigration(children?: Children, options?: TriggerMigrationOptions): MigrationClass {
    return this.parts.triggers.migration(children, options);
  }

  /** The migration of {@link triggerMigration} as source text (`coalesce triggers` writes it to a file). */
  triggerMigrationSource(
    children?: Children,
    options?: TriggerMigrationOptions & { format?: MigrationFormat },
  ): TriggerMigrationSource {
    return this.parts.triggers.source(children, options);
  }

  /** The SQL of {@link triggerMigration}: `up` creates the triggers, `down` drops them. */
  triggerStatements(children?: Children): TriggerStatements {
    return this.parts.triggers.statements(children);
  }

  /**
   * Relays the outbox shortly after each commit the triggers marked: polls it (option
   * `relayPoll`), and on PostgreSQL also listens for the notifications of triggers made by
   * earlier versions. `attach()` calls it when a child is captured by triggers; `close()` ends it.
   */
  listen(): Promise<void> {
    if (this.closed) return Promise.reject(new ConfigError('listen(): this coalescer is closed'));
    return this.parts.listener.start();
  }

  /** Registers the capture subscriber on the DataSource (and the outbox listener for trigger capture). Idempotent. */
  async attach(): Promise<void> {
    const ds = this.options.dataSource;
    if (!ds.isInitialized)
      throw new ConfigError('attach(): the DataSource is not initialized; call dataSource.initialize() first');
    dialectOf(ds);
    if (this.registry.parentNames().length === 0) {
      throw new RegistrationError('attach(): no parent registered; call parent() and child() first');
    }
    if (!this.subscriber) {
      this.subscriber = new CaptureSubscriber(this.registry, this.parts.delivery, this.logger);
      ds.subscribers.push(this.subscriber);
    }
    await Promise.all([this.registry.triggerChildren().length > 0 ? this.listen() : undefined, this.parts.prepare()]);
  }

  /** Unregisters the capture subscriber. */
  detach(): void {
    if (!this.subscriber) return;
    const list = this.options.dataSource.subscribers;
    const at = list.indexOf(this.subscriber);
    if (at >= 0) list.splice(at, 1);
    this.subscriber = undefined;
  }

  /** Relays the marks waiting in the outbox to Redis; returns how many. Also done at the start of every drain. */
  async relayOutbox(): Promise<number> {
    try {
      return await this.outbox.relay(this.parts.guard.epoch);
    } catch (error) {
      if (this.outbox.explainMissingTable(error)) return 0;
      throw error;
    }
  }

  /**
   * Marks parents explicitly, for changes capture cannot see (bulk SQL, other programs). Call it
   * after the change commits. Any number of ids; returns how many distinct parents were marked.
   * Never throws for an unreachable Redis (the marks go to the outbox).
   */
  async mark(target: EntityTarget<ObjectLiteral> | string, ids: ParentId | readonly ParentId[]): Promise<number> {
    return (await this.parts.delivery.markIds(this.registry.parentOf(target), ids)).length;
  }

  /** Resolves when every mark this process started to send before the call has reached Redis or the outbox. */
  flushed(): Promise<void> {
    return this.parts.delivery.settled();
  }

  /**
   * Claims, recomputes and acknowledges pending parents until none is left (those its own
   * recomputes marked included) or a bound is hit. Rejects with a ConnectionError when Redis (or
   * the database, before draining) cannot be reached, once what it started has ended.
   */
  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    checkDrainOptions(options);
    if (this.closed) throw new ConfigError('drain(): this coalescer is closed');
    // This process's own marks still in flight belong to this drain.
    await this.flushed();
    const { housekeeper, drainer, events } = this.parts;
    this.report('housework', await housekeeper.run());
    let result: DrainResult;
    try {
      result = await drainer.drain(options);
    } catch (error) {
      throw error instanceof CoalesceError ? error : redisUnreachable('drain()', this.parts.clients, error);
    }
    // The outbox rows of parents this drain recomputed are done with.
    await housekeeper.prune();
    this.report('drained', result);
    events.publish({ type: 'drained', result });
    return result;
  }

  /** Calls `listener` with the namespace's live events from every process, until the subscription is closed (at most once each). */
  subscribe(listener: (event: LiveEvent) => void): Promise<Subscription> {
    return this.parts.events.subscribe(listener);
  }

  /**
   * Resolves once a recompute of the parent that started after this process's latest change to
   * it, and to the parents below it in its chains, has been acknowledged: read your own writes.
   * Rejects with a FreshTimeoutError after `timeoutMs`, or a ParentDeadError. `{ now: true }`
   * recomputes here at once; `{ chain: false }` waits for the parent's own marks only.
   */
  fresh(target: EntityTarget<ObjectLiteral> | string, id: ParentId, options: FreshOptions = {}): Promise<void> {
    return this.parts.freshness.fresh(target, id, options);
  }

  /** One parent's state (waiting, heat, age of its first change, in flight, retrying, dead), for an "updating..." badge. */
  state(target: EntityTarget<ObjectLiteral> | string, id: ParentId): Promise<ParentState> {
    return this.parts.freshness.state(target, id);
  }

  /**
   * Compares a parent type's stored derived fields with what its aggregates (or its `expected`)
   * compute; parents with a recompute pending or running are skipped; `repair` marks the drifted.
   */
  async verify(target: EntityTarget<ObjectLiteral> | string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const result = await verifyParent(this.parts.verifyDeps, this.registry.parentOf(target), options);
    this.report('verified', result);
    return result;
  }

  /** A runner that drains this coalescer on a node-cron schedule; call `start()` on it. */
  runner(options: RunnerOptions = {}): Runner {
    // The process that runs a runner is the one whose log is read: it says Redis' risky settings once.
    void this.parts.admin.checkRedisSettings('process');
    return new Runner(this, options);
  }

  /** Stops the recomputes this process runs now; gives back to pending the parents of those that stop within `waitMs`. */
  releaseInflight(waitMs?: number): Promise<number> {
    return this.parts.drainer.releaseInflight(waitMs);
  }

  /** Gives back expired leases and promotes due retries without draining. */
  async requeue(): Promise<{ reaped: number; promoted: number }> {
    const { clock, drainer } = this.parts;
    const r = await onRedis('requeue()', this.parts.clients, clock.sync().then(drainer.requeue.bind(drainer)));
    return { reaped: r.reaped + r.deadLettered, promoted: r.promoted };
  }

  /** Sizes of the namespace's sets and the age of the oldest pending mark. */
  stats(): Promise<CoalescerStats> {
    return this.parts.stats.stats();
  }

  /** The `n` hottest pending parents. */
  hottest(n = 10): Promise<HotParent[]> {
    return this.parts.stats.hottest(n);
  }

  /** Redis and the database answer; throws a ConnectionError naming the one that does not, and where it is. */
  ping(): Promise<void> {
    return this.parts.admin.ping();
  }

  /** Deletes the namespace's keys, outbox rows and recorded epoch, and installs a new epoch: it starts afresh. */
  async reset(): Promise<void> {
    await this.flushed();
    await this.parts.admin.reset();
  }

  /** Detaches the subscriber and closes the Redis connections this coalescer opened. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    await this.parts.listener.stop();
    await this.parts.delivery.settled('idle');
    const { drainer, events, clients } = this.parts;
    await drainer.close(this.options.recomputeTimeoutMs);
    await events.stop();
    await this.parts.marks.leave().catch(() => undefined);
    await quit(clients.marker);
    if (clients.owned) await quit(clients.main);
  }
}
