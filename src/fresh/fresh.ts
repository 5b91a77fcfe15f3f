import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { Reads } from '../redis/reads';
import type { Outcomes } from '../redis/outcomes';
import type { ServerClock } from '../redis/clock';
import type { Outbox } from '../delivery/outbox';
import type { Policies } from '../delivery/policies';
import type { Drainer, DrainResult } from '../drain/drainer';
import type { ParentId } from '../registry/model';
import type { Registry } from '../registry/registry';
import { chainBelow } from '../registry/chain-walk';
import { ConfigError, errorMessage } from '../errors';
import type { EventHub } from './events';
import { parentState, type ParentState } from './state';
import { waitFresh } from './wait';

/** Options of `fresh()`. */
export interface FreshOptions {
  /**
   * Longest to wait; then a FreshTimeoutError naming the parent.
   * @defaultValue 30000
   */
  timeoutMs?: number;
  /**
   * Recompute the parent in this process at once (through the same claim, lease and ack as a
   * drain, so never alongside a runner) instead of waiting for a runner. A parent another worker
   * is recomputing now is waited for.
   * @defaultValue false
   */
  now?: boolean;
  /**
   * Wait for the parents below this one in its chains too (the orders of a customer, and their
   * own chained children): a save of an order line is then covered by `fresh(Customer, id)`.
   * Costs one query per chain level; more than 10,000 parents below it is an error.
   * @defaultValue true
   */
  chain?: boolean;
}

/** What read-your-writes needs. */
export interface FreshnessOptions {
  readonly registry: Registry;
  readonly dataSource: DataSource;
  readonly reads: Pick<Reads, 'generations' | 'memberState'>;
  readonly outcomes: Pick<Outcomes, 'promoteNow'>;
  readonly hub: Pick<EventHub, 'watchAcks'>;
  readonly clock: ServerClock;
  readonly outbox: Outbox;
  readonly policies: Policies;
  readonly drainer: Pick<Drainer, 'recomputeNow'>;
  readonly logger: Logger;
  /** Resolves once this process's own marks have reached Redis or the outbox. */
  readonly settled: () => Promise<void>;
  /** Told what a recompute made here (`{ now: true }`) did. */
  readonly drained: (result: DrainResult) => void;
  /** Wraps a Redis read so an unreachable Redis is a ConnectionError naming it. */
  readonly onRedis: <T>(what: string, pending: Promise<T>) => Promise<T>;
}

/** Read your writes: `fresh()` and `state()` of one parent. */
export class Freshness {
  constructor(private readonly options: FreshnessOptions) {}

  /**
   * Resolves once a recompute of the parent that started after this process's latest change to
   * it (and to the parents below it in its chains) has been acknowledged. See the facade.
   */
  async fresh(target: EntityTarget<ObjectLiteral> | string, id: ParentId, options: FreshOptions = {}): Promise<void> {
    const o = this.options;
    const parent = o.registry.parentOf(target);
    const member = o.registry.encode(parent, id);
    const timeoutMs = options.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
      throw new ConfigError(`invalid fresh option "timeoutMs" = ${String(timeoutMs)}: expected an integer >= 0`);
    }
    const deadline = performance.now() + timeoutMs;
    // Every mark must be in Redis before the generations are read: this process's own.
    await o.settled();
    await o.onRedis('fresh()', o.clock.sync());
    // The parents below it in its chains first, deepest level first: each one's recompute marks
    // the level above before its ack, so once they are fresh this parent's generation covers them.
    const levels = options.chain === false ? [] : await chainBelow(o.registry, o.dataSource, parent, id);
    for (const members of [...levels.reverse(), [member]]) {
      await this.relayKept(members);
      const runNow = options.now
        ? async (waiting: readonly string[]): Promise<void> => {
            await o.policies.publish();
            await o.outcomes.promoteNow(waiting);
            const result = await o.drainer.recomputeNow(waiting);
            // Held by another worker, or gone: nothing was done here (the wait retries it).
            if (result.claimed > 0) o.drained(result);
          }
        : undefined;
      await waitFresh(o.reads, o.hub, members, {
        timeoutMs: Math.max(0, Math.round(deadline - performance.now())),
        askedMs: timeoutMs,
        on: member,
        ...(runNow ? { runNow } : {}),
        state: (m) => this.stateOf(m),
      });
    }
  }

  /** One parent's state (waiting, heat, age of its first change, in flight, retrying, dead). */
  state(target: EntityTarget<ObjectLiteral> | string, id: ParentId): Promise<ParentState> {
    const { registry } = this.options;
    return this.stateOf(registry.encode(registry.parentOf(target), id));
  }

  private stateOf(member: string): Promise<ParentState> {
    const { onRedis, clock, reads, outbox } = this.options;
    return onRedis(
      'state()',
      clock.sync().then(() =>
        parentState(reads, member, clock.now(), (m) =>
          outbox.unsent([m]).then(
            (found) => found.has(m),
            () => false,
          ),
        ),
      ),
    );
  }

  /** Relays the marks of `members` kept in the outbox while Redis was away (a drain would send them). */
  private async relayKept(members: readonly string[]): Promise<void> {
    const { outbox, logger } = this.options;
    try {
      const kept = members.length === 1 ? new Set(members) : await outbox.unsent(members);
      for (const m of kept) await outbox.relay('', m);
    } catch (error) {
      if (!outbox.explainMissingTable(error)) {
        logger.debug({ err: errorMessage(error) }, 'fresh(): could not relay the outbox first');
      }
    }
  }
}
