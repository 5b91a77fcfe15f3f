import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { EntityTarget, ObjectLiteral } from 'typeorm';
import type { CoalesceLogger as Logger } from './log';
import { resolveOptions, type CoalescerOptions, type ResolvedOptions } from './config';
import { defaultLogger } from './log';
import { CoalesceError, ConfigError, ConnectionError, RegistrationError, errorMessage } from './errors';
import { eventChannel, keysFor } from './redis/keys';
import { Store, type DeadEntry, type MarkEntry } from './redis/store';
import { ServerClock } from './redis/clock';
import { openClients, quit, type Clients } from './redis/connect';
import { Registry, heatOf, type ChildOptions, type ParentId, type ParentOptions, type ParentType } from './registry';
import { Marker, addMark, type MarkerStats } from './capture/marker';
import { CaptureSubscriber } from './capture/subscriber';
import { DerivedColumns, type ParentCaptureOptions } from './capture/derived';
import { Outbox } from './capture/outbox';
import { OutboxListener } from './capture/listener';
import type { TriggerStatements } from './capture/trigger-sql';
import {
  TriggerMigrations,
  type MigrationClass,
  type MigrationFormat,
  type TriggerMigrationOptions,
  type TriggerMigrationSource,
} from './capture/triggers';
import { EpochGuard } from './epoch';
import { chainedParents } from './chains';
import { Housekeeper, type Housework } from './housekeeping';
import { dialectOf } from './db/dialect';
import { Drainer, type DrainOptions, type DrainResult, type FailedEvent, type RecomputedEvent } from './drain/drainer';
import { Runner, type RunnerOptions } from './runner/runner';
import { EventHub, type LiveEvent, type Subscription } from './events';
import { parentState, waitFresh, type FreshOptions, type ParentState } from './fresh';
import { verifyParent, type VerifyOptions, type VerifyResult } from './verify/verifier';
import { chainBelow } from './fresh-chain';
import { within } from './within';
import { guardPostgresPool } from './db/pool-guard';

/** Events a Coalescer emits. */
export interface CoalescerEvents {
  recomputed: [RecomputedEvent];
  failed: [FailedEvent];
  /** After each `drain()` that completed (a runner's ticks included), with what it did. */
  drained: [DrainResult];
  /** Before a drain, what the housekeeping did (outbox relayed and pruned, rebuild after a Redis data loss). */
  housework: [Housework];
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
  /** Marks kept in the outbox table: not yet in Redis, or kept until recomputed (null when the table is missing). */
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
  /** Gives dead parents a fresh start (back to pending with their heat): any number of members, or 'all'. */
  retry(members: string | readonly string[] | 'all'): Promise<number>;
  /** Removes dead parents for good: any number of members, or 'all'. */
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
  /** The namespace's clock: local time corrected against Redis'. */
  readonly clock: ServerClock;
  /** The durable outbox of marks. */
  readonly outbox: Outbox;
  private readonly clients: Clients;
  private readonly marker: Marker;
  private readonly drainer: Drainer;
  private readonly guard: EpochGuard;
  private readonly housekeeper: Housekeeper;
  private readonly events: EventHub;
  private redisChecked = false;
  private subscriber: CaptureSubscriber | undefined;
  private readonly derived = new DerivedColumns();
  private policiesWritten: Promise<void> | undefined;
  /** `policiesWritten` once it has resolved: marks need not wait for it any more. */
  private policiesDone: Promise<void> | undefined;
  private closed = false;
  private readonly triggers: TriggerMigrations;
  private listener: OutboxListener | undefined;

  constructor(options: CoalescerOptions) {
    super();
    this.options = resolveOptions(options);
    const o = this.options;
    this.logger = (o.logger ?? defaultLogger()).child({ namespace: o.namespace });
    guardPostgresPool(o.dataSource, this.logger);
    this.clients = openClients(o.redis, o.markTimeoutMs, this.logger);
    this.registry = new Registry(o.dataSource, { maxWaitMs: o.maxWaitMs });
    const channel = eventChannel(o.namespace);
    this.store = new Store(this.clients.main, keysFor(o.namespace), channel);
    this.clock = new ServerClock(o.clock, () => this.store.time());
    this.events = new EventHub(this.clients.main, this.store.keys, channel, this.worker, this.logger);
    const now = (): number => this.clock.now();
    this.guard = new EpochGuard(this.store, o.dataSource, o.namespace, this.logger, this.clients.where);
    this.marker = new Marker(new Store(this.clients.marker, this.store.keys, channel), this.logger, now, {
      timeoutMs: o.markTimeoutMs,
      awaitMarks: o.awaitMarks,
      reachable: this.clients.reachable,
      clockReady: () => this.clock.ready,
      bulk: this.store,
      fence: this.guard,
    });
    this.outbox = new Outbox(o.dataSource, o.namespace, this.store, this.logger, now, o.outboxTable);
    // Said once per outage by the marker, not once per transaction.
    this.marker.onUndelivered(async (entries) => {
      await this.outbox.write(entries).catch((error: unknown) => {
        this.outbox.explainMissingTable(error);
        throw error;
      });
    });
    this.drainer = new Drainer(
      this.store,
      this.registry,
      o.dataSource,
      { leaseMs: o.leaseMs, recomputeTimeoutMs: o.recomputeTimeoutMs, retry: o.retry },
      // Every drain line (failures, recompute loggers) says which worker wrote it.
      this.logger.child({ worker: this.worker }),
      {
        recomputed: (e) => {
          this.report('recomputed', e);
          this.events.publish(() => ({ type: 'recomputed', ...e }));
        },
        failed: (e) => {
          this.report('failed', e);
          this.events.publish(() => ({ type: 'failed', ...e, error: errorMessage(e.error) }));
        },
        // Parent chains: a recomputed Order marks its Customer before the Order's ack.
        beforeAck: (parent, ids) => {
          if (this.registry.chainLinksOf(parent).length === 0) return undefined;
          return (async () => {
            const marked: string[] = [];
            for (const [next, nextIds] of await chainedParents(this.registry, o.dataSource, parent, ids())) {
              marked.push(...(await this.markParents(next, nextIds)));
            }
            return marked;
          })();
        },
        scoped: () => this.derived.any,
      },
      this.clock,
    );
    this.housekeeper = new Housekeeper(
      this.store,
      this.registry,
      o.dataSource,
      this.clock,
      this.guard,
      this.outbox,
      (force) => this.publishPolicies(force),
      (type, ids) => this.mark(type, ids),
      o.onRedisLoss === 'rebuild',
      this.logger,
      this.clients.where,
    );
    this.triggers = new TriggerMigrations(o.dataSource, this.registry, o.namespace, o.outboxTable);
    // Measured at once, so the first marks already carry the namespace's time.
    this.clock.sync().catch((error: unknown) => this.logger.debug({ err: errorMessage(error) }, 'clock not set yet'));
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
    return this.clients.where;
  }

  /** Registers a parent type, how to recompute it, and which of its columns are derived. */
  parent<Id extends ParentId = ParentId>(
    target: EntityTarget<ObjectLiteral>,
    options: ParentOptions<Id> & ParentCaptureOptions,
  ): this {
    this.requireInitialized('parent()');
    const ds = this.options.dataSource;
    // Checked before registering, so a bad list leaves nothing half registered.
    const derived = ds.hasMetadata(target) ? DerivedColumns.resolve(ds.getMetadata(target), options.derived) : [];
    const type = this.registry.addParent(target, options as ParentOptions);
    // Fields declared as aggregates are derived columns too: a host save writing one back is caught.
    const aggregated = (type.aggregates?.fields ?? []).map((f) => f.column).filter((c) => !c.relationMetadata);
    this.derived.set(type, [...new Set([...derived, ...aggregated])]);
    this.policiesWritten = undefined;
    return this;
  }

  /** Registers a child whose changes make `options.parent` stale; once per parent of the child. */
  child(target: EntityTarget<ObjectLiteral>, options: ChildOptions): this {
    this.requireInitialized('child()');
    this.registry.addChild(target, options);
    return this;
  }

  private requireInitialized(what: string): void {
    if (!this.options.dataSource.isInitialized) {
      throw new ConfigError(
        `${what}: the DataSource is not initialized: call await dataSource.initialize() before registering parents and children`,
      );
    }
  }

  /**
   * A TypeORM migration class that installs trigger capture (PostgreSQL): statement-level
   * triggers on each child's table write the parents of every change, raw SQL and other programs
   * included, to the outbox. `children` are entity targets or names (default: every child
   * registered with capture 'triggers'); `down()` drops the triggers. A ConfigError on
   * MySQL/MariaDB, where only the subscriber applies.
   */
  triggerMigration(
    children?: readonly (EntityTarget<ObjectLiteral> | string)[],
    options?: TriggerMigrationOptions,
  ): MigrationClass {
    return this.triggers.migration(children, options);
  }

  /** The migration of {@link triggerMigration} as source text (`coalesce triggers` writes it to a file). */
  triggerMigrationSource(
    children?: readonly (EntityTarget<ObjectLiteral> | string)[],
    options?: TriggerMigrationOptions & { format?: MigrationFormat },
  ): TriggerMigrationSource {
    return this.triggers.source(children, options);
  }

  /** The SQL of {@link triggerMigration}: `up` creates the triggers, `down` drops them. */
  triggerStatements(children?: readonly (EntityTarget<ObjectLiteral> | string)[]): TriggerStatements {
    return this.triggers.statements(children);
  }

  /**
   * Relays the outbox within milliseconds of each commit that the triggers marked: a dedicated
   * PostgreSQL connection LISTENs for their notifications (one relay in flight, one queued). A
   * dropped connection is reopened with backoff. `attach()` calls it when a child is captured by
   * triggers; `close()` ends it. Resolves once listening, or once the first attempt failed (it
   * is retried in the background); rejects only with a ConfigError off PostgreSQL.
   */
  listen(): Promise<void> {
    if (this.closed) return Promise.reject(new ConfigError('listen(): this coalescer is closed'));
    const ds = this.options.dataSource;
    if (ds.options.type !== 'postgres') {
      return Promise.reject(
        new ConfigError(
          `listen(): the outbox notifications come from PostgreSQL triggers; the DataSource is ${String(ds.options.type)}`,
        ),
      );
    }
    // Before the first drain the epoch is unknown: the full housework then sets it, so the
    // relayed rows are recorded as sent and not sent again.
    this.listener ??= new OutboxListener(
      ds,
      this.namespace,
      () => (this.guard.epoch === '' ? this.housekeeper.run() : this.relayOutbox()),
      this.logger,
    );
    return this.listener.start();
  }

  /** Registers the capture subscriber on the DataSource. Idempotent. */
  attach(): Promise<void> {
    const ds = this.options.dataSource;
    if (!ds.isInitialized) {
      return Promise.reject(new ConfigError('attach(): the DataSource is not initialized; call dataSource.initialize() first'));
    }
    try {
      dialectOf(ds);
    } catch (error) {
      return Promise.reject(error);
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
        this.derived,
      );
      ds.subscribers.push(this.subscriber);
    }
    // The host must start even when Redis is down; the policies go out with the next drain or mark.
    return Promise.all([
      this.registry.triggerChildren().length > 0 ? this.listen() : undefined,
      this.publishPolicies().catch((error: unknown) => {
        this.logger.warn(
          { err: errorMessage(error), redis: this.clients.where },
          'attach(): Redis did not answer; parent policies will be published later',
        );
      }),
      this.checkRedisSettings(),
    ]).then(() => undefined);
  }

  /**
   * Warns once when Redis may lose marks: an eviction policy other than noeviction drops
   * pending parents under memory pressure, and without persistence a restart loses them (the
   * epoch check then finds the loss and heals it: see `onRedisLoss`). CONFIG may be disabled:
   * then nothing is said.
   */
  private async checkRedisSettings(): Promise<void> {
    if (this.redisChecked) return;
    this.redisChecked = true;
    try {
      const [policy, aof, save] = await Promise.all(
        ['maxmemory-policy', 'appendonly', 'save'].map(
          async (name) => ((await this.clients.main.config('GET', name)) as unknown as string[])[1],
        ),
      );
      if (policy !== undefined && policy !== 'noeviction') {
        this.logger.warn(
          { maxmemoryPolicy: policy },
          'Redis maxmemory-policy is not noeviction: under memory pressure Redis may evict pending parents, which then stay stale',
        );
      }
      if (aof === 'no' && (save === '' || save === undefined)) {
        this.logger.warn(
          { onRedisLoss: this.options.onRedisLoss },
          this.options.onRedisLoss === 'rebuild'
            ? 'Redis has no persistence (appendonly no, no save points): after a Redis restart every registered parent is marked again (onRedisLoss: rebuild)'
            : 'Redis has no persistence (appendonly no, no save points): after a Redis restart the outbox is sent again; marks not in it are lost',
        );
      }
    } catch {
      // CONFIG is often disabled on managed Redis: nothing to say then.
    }
  }

  /** Relays the marks waiting in the outbox to Redis; returns how many. Also done at the start of every drain. */
  async relayOutbox(): Promise<number> {
    try {
      return await this.outbox.relay(this.guard.epoch);
    } catch (error) {
      if (this.outbox.explainMissingTable(error)) return 0;
      throw error;
    }
  }

  /**
   * Publishes each parent type's priority, settleMs and maxWaitMs to Redis, where the scripts
   * read them (so marks sent by any process, or relayed later, follow them). Once per
   * registration, and again when Redis lost them; a failure is retried on the next call.
   */
  private publishPolicies(force = false): Promise<void> {
    if (force) this.policiesWritten = undefined;
    if (this.policiesWritten) return this.policiesWritten;
    const written = this.store
      .writePolicies(
        new Map(this.registry.parentTypes().map((t) => [t.name, { base: t.base, settleMs: t.settleMs, maxWaitMs: t.maxWaitMs }])),
      )
      .then(
        () => {
          this.policiesDone = written;
        },
        (error: unknown) => {
          if (this.policiesWritten === written) this.policiesWritten = undefined;
          throw error;
        },
      );
    this.policiesWritten = written;
    return written;
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
   * bulk update/delete, raw SQL). Call it after the change commits. Any number of ids. Returns
   * the number of distinct parents marked; never throws for an unreachable Redis (the marks go
   * to the outbox). With `delivery: 'outbox'` the marks are written to the outbox first.
   */
  async mark(target: EntityTarget<ObjectLiteral> | string, ids: ParentId | readonly ParentId[]): Promise<number> {
    return (await this.markParents(this.registry.parentOf(target), ids)).length;
  }

  /** Marks parents of one type; returns their members. */
  private async markParents(parent: ParentType, ids: ParentId | readonly ParentId[]): Promise<string[]> {
    const batch = new Map<string, MarkEntry>();
    for (const id of Array.isArray(ids) ? (ids as readonly unknown[]) : [ids]) {
      addMark(batch, { member: this.registry.encode(parent, id), increment: 1, base: parent.base });
    }
    const entries = [...batch.values()];
    // Without the policies a settling type's marks would go straight to pending. A Redis that
    // cannot take them within markTimeoutMs will not take the marks either: those go straight
    // to the outbox, so an unreachable Redis costs one markTimeoutMs, not two.
    const away = await this.policiesOrAway();
    if (this.options.delivery === 'outbox') {
      const written = await this.outbox.write(entries);
      if (away) return [...batch.keys()];
      const sent = await this.marker.send(entries, { keep: false, bulk: true });
      if (sent.delivered) await this.outbox.sent(written, sent.epoch, sent.generation).catch(() => undefined);
    } else if (away) {
      this.marker.keepOnly(entries, away);
    } else {
      await this.marker.send(entries, { bulk: true });
    }
    return [...batch.keys()];
  }

  /** Publishes the policies if need be; returns why Redis is away when it could not within markTimeoutMs. */
  private async policiesOrAway(): Promise<Error | undefined> {
    const timeoutMs = this.options.markTimeoutMs;
    if (!this.clients.reachable()) return new Error(`Redis at ${this.clients.where} is down (reconnecting)`);
    const publishing = this.publishPolicies();
    if (publishing === this.policiesDone) return undefined;
    return within(
      publishing,
      timeoutMs,
      () => `Redis at ${this.clients.where} did not answer within ${timeoutMs} ms (markTimeoutMs)`,
    ).then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error : new Error(errorMessage(error))),
    );
  }

  /**
   * Resolves when every mark the subscriber has started to send (they go out in the background
   * unless `awaitMarks`) has reached Redis or the outbox.
   */
  flushed(): Promise<void> {
    return this.marker.settled();
  }

  /**
   * Claims, recomputes and acknowledges pending parents until none is left or a bound is hit.
   * Rejects with a ConnectionError when Redis (or the database, before draining) cannot be
   * reached; recomputes it started have ended and its unstarted claims were given back by then.
   */
  async drain(options: DrainOptions = {}): Promise<DrainResult> {
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
    if (this.closed) throw new ConfigError('drain(): this coalescer is closed');
    // This process's own marks still in flight belong to this drain.
    await this.marker.settled();
    const work = await this.housekeeper.run();
    this.report('housework', work);
    let result: DrainResult;
    try {
      result = await this.drainer.drain(options);
    } catch (error) {
      if (error instanceof CoalesceError) throw error;
      throw new ConnectionError(`drain failed: Redis at ${this.clients.where}: ${errorMessage(error)}`, { cause: error });
    }
    // The outbox rows of parents this drain recomputed are done with.
    await this.housekeeper.prune();
    this.report('drained', result);
    this.events.publish({ type: 'drained', result });
    return result;
  }

  /**
   * Calls `listener` with the namespace's live events from every process (recomputed, failed,
   * drained), over Redis pub/sub, until the subscription is closed. Delivery is at most once.
   */
  subscribe(listener: (event: LiveEvent) => void): Promise<Subscription> {
    return this.events.subscribe(listener);
  }

  /**
   * Resolves once a recompute of the parent that started after this process's latest change to
   * it (committed, and its mark sent) has been acknowledged: read your own writes. Resolves at
   * once when nothing waits. Rejects with a FreshTimeoutError after `timeoutMs`, or a
   * ParentDeadError when the parent is dead-lettered. `{ now: true }` recomputes it here at once.
   */
  async fresh(target: EntityTarget<ObjectLiteral> | string, id: ParentId, options: FreshOptions = {}): Promise<void> {
    const parent = this.registry.parentOf(target);
    const member = this.registry.encode(parent, id);
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
      throw new ConfigError(`invalid fresh option "timeoutMs" = ${String(timeoutMs)}: expected an integer >= 0`);
    }
    const deadline = performance.now() + timeoutMs;
    // Every mark must be in Redis before the generations are read: this process's own.
    await this.marker.settled();
    await this.clock.sync();
    // The parents below it in its chains first, deepest level first: each one's recompute marks
    // the level above before its ack, so once they are fresh this parent's generation covers them.
    const levels = options.chain === false ? [] : await chainBelow(this.registry, this.options.dataSource, parent, id);
    for (const members of [...levels.reverse(), [member]]) {
      await this.relayKept(members);
      const runNow = options.now
        ? async (waiting: readonly string[]): Promise<void> => {
            await this.publishPolicies();
            await this.store.promoteNow(waiting);
            this.report('drained', await this.drainer.recomputeNow(waiting));
          }
        : undefined;
      await waitFresh(this.store, this.events, members, {
        timeoutMs: Math.max(0, Math.round(deadline - performance.now())),
        askedMs: timeoutMs,
        on: member,
        ...(runNow ? { runNow } : {}),
        state: (m) => this.stateOf(m),
      });
    }
  }

  /** Relays the marks of `members` kept in the outbox while Redis was away (a drain would send them). */
  private async relayKept(members: readonly string[]): Promise<void> {
    try {
      const kept = members.length === 1 ? new Set(members) : await this.outbox.unsent(members);
      for (const m of kept) await this.outbox.relay('', m);
    } catch (error) {
      if (!this.outbox.explainMissingTable(error)) {
        this.logger.debug({ err: errorMessage(error) }, 'fresh(): could not relay the outbox first');
      }
    }
  }

  /** One parent's state (waiting, heat, age of its first change, in flight, retrying, dead), for an "updating..." badge. */
  async state(target: EntityTarget<ObjectLiteral> | string, id: ParentId): Promise<ParentState> {
    return this.stateOf(this.registry.encode(this.registry.parentOf(target), id));
  }

  private stateOf(member: string): Promise<ParentState> {
    return this.onRedis(
      'state()',
      this.clock.sync().then(() =>
        parentState(this.store, member, this.clock.now(), (m) =>
          this.outbox.unsent([m]).then(
            (found) => found.has(m),
            () => false,
          ),
        ),
      ),
    );
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
        clock: () => this.clock.now(),
        kept: (members) => this.outbox.unsent(members),
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

  /**
   * Stops the recomputes this process runs now (their signals abort with a StoppingError) and
   * gives back to pending the parents of those that stop within `waitMs`; the others keep their
   * parents until they end or their leases expire. For a shutdown that will not wait longer.
   */
  releaseInflight(waitMs?: number): Promise<number> {
    return this.drainer.releaseInflight(waitMs);
  }

  /** Gives back expired leases and promotes due retries without draining. */
  async requeue(): Promise<{ reaped: number; promoted: number }> {
    const { reaped, promoted, deadLettered } = await this.onRedis(
      'requeue()',
      this.clock.sync().then(() => this.drainer.requeue()),
    );
    return { reaped: reaped + deadLettered, promoted };
  }

  /** Sizes of the namespace's sets and the age of the oldest pending mark. */
  async stats(): Promise<CoalescerStats> {
    await this.clock.sync().catch(() => undefined);
    const now = this.clock.now();
    const [[c, waits], outbox] = await Promise.all([
      this.onRedis('stats()', Promise.all([this.store.counts(now), this.store.recentWaits()])),
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
    return (await this.onRedis('hottest()', this.store.top(n))).map(({ member, score }) => ({ member, heat: heatOf(score) }));
  }

  /**
   * `pending`, or a ConnectionError naming Redis and where it is when Redis cannot be reached
   * (an error Redis itself replied with is passed on as it is).
   */
  private async onRedis<T>(what: string, pending: Promise<T>): Promise<T> {
    try {
      return await pending;
    } catch (error) {
      if (error instanceof CoalesceError || (error instanceof Error && error.name === 'ReplyError')) throw error;
      throw new ConnectionError(`${what}: cannot reach Redis at ${this.clients.where}: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** Dead-lettered parents: list, retry, purge. */
  readonly dead: DeadLetters = {
    list: ({ offset = 0, limit = 100 } = {}) => this.onRedis('dead.list()', this.store.listDead(offset, limit)),
    retry: (members) =>
      this.onRedis(
        'dead.retry()',
        this.eachDeadBatch(members, (batch) => this.store.revive(batch, this.clock.now(), DEAD_BATCH)),
      ),
    purge: (members) =>
      this.onRedis(
        'dead.purge()',
        this.eachDeadBatch(members, (batch) => this.store.purge(batch, DEAD_BATCH)),
      ),
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

  /** Redis and the database answer; throws a ConnectionError naming the one that does not, and where it is. */
  async ping(): Promise<void> {
    try {
      await this.clients.main.ping();
    } catch (error) {
      throw new ConnectionError(`cannot reach Redis at ${this.clients.where}: ${(error as Error).message}`, { cause: error });
    }
    const ds = this.options.dataSource;
    const what = `${String(ds.options.type)} database${describeDatabase(ds.options)}`;
    if (!ds.isInitialized) throw new ConnectionError(`cannot reach the ${what}: the DataSource is not initialized`);
    try {
      await ds.query('SELECT 1');
    } catch (error) {
      throw new ConnectionError(`cannot reach the ${what}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Deletes every key of the namespace in Redis (but its fence counter, so fencing tokens never
   * repeat), its outbox rows and its recorded epoch, and installs a new epoch: the namespace
   * starts afresh, and no process takes the empty Redis for a data loss.
   */
  async reset(): Promise<void> {
    await this.marker.settled();
    await this.guard.forget();
    await this.store.clear();
    // A new epoch at once, marked as a reset's: other processes adopt it, not take it for a loss.
    await this.guard.installReset();
    await this.options.dataSource
      .query(
        `DELETE FROM ${this.outbox.table} WHERE namespace = ${dialectOf(this.options.dataSource) === 'postgres' ? '$1' : '?'}`,
        [this.namespace],
      )
      .catch((error: unknown) => {
        if (!this.outbox.explainMissingTable(error)) throw error;
      });
  }

  /** Detaches the subscriber and closes the Redis connections this coalescer opened. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    await this.listener?.close();
    await this.marker.settled();
    await this.drainer.close(this.options.recomputeTimeoutMs);
    await this.events.stop();
    await quit(this.clients.marker);
    if (this.clients.owned) await quit(this.clients.main);
  }
}

/** ` at host:port/database` from DataSource options, for messages (never the password). */
function describeDatabase(options: object): string {
  const o = options as { url?: string; host?: string; port?: number; database?: string };
  if (o.url) {
    try {
      const u = new URL(o.url);
      return ` at ${u.hostname}:${u.port || '(default port)'}${u.pathname}`;
    } catch {
      return '';
    }
  }
  if (o.host) return ` at ${o.host}:${o.port ?? '(default port)'}/${o.database ?? ''}`;
  return '';
}

/** The `q` quantile of `values` (nearest rank), or null when there are none. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}
