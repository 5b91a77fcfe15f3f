import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { CoalesceLogger as Logger } from './log';
import type { ResolvedOptions } from './config';
import { defaultLogger } from './log';
import { errorMessage, onRedis, redisTrouble, type RedisSite } from './errors';
import { guardPostgresPool } from './db/pool-guard';
import { eventChannel, keysFor, type Keys } from './redis/keys';
import { openClients, type Clients } from './redis/connect';
import { defineScripts } from './redis/scripts';
import { ServerClock } from './redis/clock';
import { Marks } from './redis/marks';
import { Claims } from './redis/claims';
import { Outcomes } from './redis/outcomes';
import { DeadSet } from './redis/dead';
import { Epochs } from './redis/epochs';
import { Reads } from './redis/reads';
import { Registry } from './registry/registry';
import { chainedParents } from './registry/chain-walk';
import type { ParentId, ParentType } from './registry/model';
import { Marker } from './delivery/marker';
import { Outbox } from './delivery/outbox';
import { Policies } from './delivery/policies';
import { Delivery } from './delivery/delivery';
import { Drainer, type DrainResult, type FailedEvent, type RecomputedEvent } from './drain/drainer';
import { EpochGuard } from './ops/epoch-guard';
import { Housekeeper } from './ops/housekeeper';
import { Stats } from './ops/stats';
import { deadLetters, type DeadLetters } from './ops/dead-letters';
import { NamespaceAdmin } from './ops/namespace';
import { EventHub } from './fresh/events';
import { Freshness } from './fresh/fresh';
import { TriggerMigrations } from './triggers/migrations';
import { OutboxListener } from './delivery/listener';
import { OutboxPoller } from './delivery/poller';
import type { VerifyDeps } from './verify/verifier';

let workerSeq = 0;

/** What the parts report to the facade, which emits it to the host's listeners. */
export interface Reports {
  recomputed(event: RecomputedEvent): void;
  failed(event: FailedEvent): void;
  /** A drain ran outside `drain()` (`fresh({ now: true })`). */
  drained(result: DrainResult): void;
}

/** Every part of a coalescer, built from its resolved options in one place. */
export interface Parts {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  /** This coalescer's worker in log lines: `host:pid:n`. */
  readonly worker: string;
  readonly clients: Clients;
  readonly keys: Keys;
  readonly registry: Registry;
  readonly clock: ServerClock;
  readonly reads: Reads;
  /** The marks this process sends on its main connection (explicit mark(), the outbox relay). */
  readonly marks: Marks;
  readonly epochs: Epochs;
  readonly outcomes: Outcomes;
  readonly guard: EpochGuard;
  readonly marker: Marker;
  readonly outbox: Outbox;
  readonly policies: Policies;
  readonly delivery: Delivery;
  readonly drainer: Drainer;
  readonly housekeeper: Housekeeper;
  readonly events: EventHub;
  readonly freshness: Freshness;
  readonly stats: Stats;
  readonly dead: DeadLetters;
  readonly admin: NamespaceAdmin;
  readonly triggers: TriggerMigrations;
  /** What verify() reads and marks through. */
  readonly verifyDeps: VerifyDeps;
  /**
   * Starts relaying the outbox shortly after the triggers write to it, once: polls it, and on
   * PostgreSQL also listens for the notifications of triggers made by earlier versions. `stop`
   * ends it. Never rejects.
   */
  readonly listener: { start(): Promise<void>; stop(): Promise<void> };
  /**
   * What attach() does besides the subscriber: publishes the type policies and checks Redis'
   * settings. Never rejects: the host must start even when Redis is down (the policies then go
   * out with the next drain or mark).
   */
  readonly prepare: () => Promise<void>;
}

/** Builds the parts of a coalescer; `reports` receives what the drain and read-your-writes report. */
export function assemble(options: ResolvedOptions, reports: Reports): Parts {
  const o = options;
  const logger = (o.logger ?? defaultLogger()).child({ namespace: o.namespace });
  const worker = `${hostname()}:${process.pid}:${(workerSeq += 1)}`;
  // A pg client that errors between the pool and TypeORM must not end the process.
  guardPostgresPool(o.dataSource, logger);
  const clients = openClients(o.redis, o.markTimeoutMs, logger);
  // Where Redis is and why it last could not be reached: what every Redis error names.
  const redis: RedisSite = { where: clients.where, lastError: clients.lastError };
  const keys = keysFor(o.namespace);
  const channel = eventChannel(o.namespace);
  defineScripts(clients.main);
  defineScripts(clients.marker);
  const main = { client: clients.main, keys };
  const reads = new Reads(main);
  // This process's marks, on either connection, leave their last generation under one writer id.
  const writer = `${worker}:${randomBytes(4).toString('hex')}`;
  const marks = new Marks(main, writer);
  const epochs = new Epochs(main);
  const outcomes = new Outcomes(main, channel);
  const registry = new Registry(o.dataSource, { maxWaitMs: o.maxWaitMs, minIntervalMs: o.minIntervalMs });
  const clock = new ServerClock(o.clock, () => reads.time());
  const now = (): number => clock.now();
  const guard = new EpochGuard({ epochs, dataSource: o.dataSource, namespace: o.namespace, logger, redis, writer });
  const outbox = new Outbox({
    dataSource: o.dataSource,
    namespace: o.namespace,
    marks,
    reads,
    logger,
    clock: now,
    table: o.outboxTable,
  });
  const marker = new Marker({
    marks: new Marks({ client: clients.marker, keys }, writer),
    bulk: marks,
    logger,
    clock: now,
    timeoutMs: o.markTimeoutMs,
    awaitMarks: o.awaitMarks,
    reachable: clients.reachable,
    clockReady: () => clock.ready,
    fence: guard,
    // Said once per outage by the marker, not once per transaction.
    keep: async (entries) => {
      await outbox.write(entries).catch((error: unknown) => {
        outbox.explainMissingTable(error);
        throw error;
      });
    },
  });
  const policies = new Policies({ epochs, registry, reachable: clients.reachable, redis, markTimeoutMs: o.markTimeoutMs });
  const delivery = new Delivery({ mode: o.delivery, marker, outbox, policies, registry, logger });
  const events = new EventHub({ client: clients.main, keys, channel, worker, logger });
  const drainer = new Drainer({
    claims: new Claims(main),
    outcomes,
    marks,
    epochs,
    reads,
    registry,
    dataSource: o.dataSource,
    clock,
    // Every drain line (failures, recompute loggers) says which worker wrote it.
    logger: logger.child({ worker }),
    settings: { leaseMs: o.leaseMs, recomputeTimeoutMs: o.recomputeTimeoutMs, retry: o.retry },
    hooks: {
      recomputed: (e) => {
        reports.recomputed(e);
        events.publish(() => ({ type: 'recomputed', ...e }));
      },
      failed: (e) => {
        reports.failed(e);
        events.publish(() => ({ type: 'failed', ...e, error: errorMessage(e.error) }));
      },
      beforeAck: (parent, ids) => (registry.chainLinksOf(parent).length === 0 ? undefined : markChained(parent, ids())),
      scoped: () => registry.anyDerived,
    },
  });
  // Parent chains: a recomputed Order marks its Customer before the Order's ack.
  const markChained = async (parent: ParentType, ids: ParentId[]): Promise<string[]> => {
    const marked: string[] = [];
    for (const [next, nextIds] of await chainedParents(registry, o.dataSource, parent, ids)) {
      marked.push(...(await delivery.markIds(next, nextIds)));
    }
    return marked;
  };
  const housekeeper = new Housekeeper({
    epochs,
    registry,
    dataSource: o.dataSource,
    clock,
    guard,
    outbox,
    policies,
    mark: (type, ids) => delivery.markIds(registry.parentOf(type), ids),
    rebuildOnLoss: o.onRedisLoss === 'rebuild',
    logger,
    redis,
  });
  const freshness = new Freshness({
    registry,
    dataSource: o.dataSource,
    reads,
    outcomes,
    hub: events,
    clock,
    outbox,
    policies,
    drainer,
    logger,
    settled: () => delivery.settled(),
    drained: (result) => reports.drained(result),
    onRedis: (what, pending) => onRedis(what, redis, pending),
  });
  let listener: OutboxListener | undefined;
  let poller: OutboxPoller | undefined;
  const relay = async (): Promise<unknown> => {
    // Before the first drain the epoch is unknown: the full housework then sets it, so the
    // relayed rows are recorded as sent and not sent again.
    if (guard.epoch === '') return housekeeper.run();
    return outbox.relayUnsent(guard.epoch);
  };
  const explained = <T>(what: Promise<T>): Promise<T> =>
    what.catch((error: unknown) => {
      outbox.explainMissingTable(error);
      throw error;
    });
  const startListener = (): Promise<void> => {
    poller ??= new OutboxPoller({
      oldest: () => explained(outbox.oldestUnsent()),
      relay: () => explained(relay()),
      logger,
      poll: o.relayPoll,
    });
    poller.start();
    // Triggers made by earlier versions NOTIFY after writing: a notification polls at once.
    if (o.dataSource.options.type !== 'postgres') return Promise.resolve();
    const wake = poller;
    listener ??= new OutboxListener(o.dataSource, o.namespace, async () => wake.wake(), logger);
    return listener.start();
  };
  const admin = new NamespaceAdmin({
    client: clients.main,
    dataSource: o.dataSource,
    epochs,
    guard,
    outbox,
    logger,
    onRedisLoss: o.onRedisLoss,
    redis,
    settingsWarned: keys.settingsWarned,
  });
  // Measured at once, so the first marks already carry the namespace's time.
  clock.sync().catch((error: unknown) => logger.debug({ err: errorMessage(error) }, 'clock not set yet'));
  return {
    options,
    logger,
    worker,
    clients,
    keys,
    registry,
    clock,
    reads,
    marks,
    epochs,
    outcomes,
    guard,
    marker,
    outbox,
    policies,
    delivery,
    drainer,
    housekeeper,
    events,
    freshness,
    stats: new Stats({ reads, clock, outbox, marker, redis }),
    dead: deadLetters(new DeadSet(main), clock, redis),
    admin,
    triggers: new TriggerMigrations(o.dataSource, registry, o.namespace, o.outboxTable),
    verifyDeps: {
      dataSource: o.dataSource,
      registry,
      reads,
      mark: async (name, ids) => (await delivery.markIds(registry.parentOf(name), ids)).length,
      recheckMs: o.markTimeoutMs,
      clock: now,
      kept: (members) => outbox.unsent(members),
    },
    listener: {
      start: startListener,
      stop: async () => {
        await listener?.close();
        await poller?.close();
      },
    },
    prepare: async () => {
      await Promise.all([
        policies.publish().catch((error: unknown) => {
          logger.warn(
            { err: redisTrouble(error, redis), redis: redis.where },
            'attach(): Redis did not answer; parent policies will be published later',
          );
        }),
        admin.checkRedisSettings('namespace'),
      ]);
    },
  };
}
