import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { Epochs } from '../redis/epochs';
import type { ServerClock } from '../redis/clock';
import type { Outbox } from '../delivery/outbox';
import type { Policies } from '../delivery/policies';
import type { ParentId } from '../registry/model';
import type { Registry } from '../registry/registry';
import { errorMessage, onRedis, type RedisSite } from '../errors';
import type { EpochGuard } from './epoch-guard';
import { pageIds } from './rebuild';

/** Rows of one parent type marked per drain by the rebuild that follows a Redis data loss. */
export const REBUILD_STEP = 5_000;

/** What the work before a drain did. */
export interface Housework {
  /** Marks relayed from the outbox to Redis. */
  relayed: number;
  /** Outbox rows deleted because Redis can no longer lose their marks. */
  pruned: number;
  /** Parents marked by the rebuild after a Redis data loss. */
  rebuilt: number;
  /** Whether this drain found Redis had lost the namespace's data. */
  redisLost: boolean;
}

/** What the housekeeper needs. */
export interface HousekeeperOptions {
  readonly epochs: Pick<Epochs, 'rebuildCursors' | 'advanceRebuild'>;
  readonly registry: Registry;
  readonly dataSource: DataSource;
  readonly clock: ServerClock;
  readonly guard: EpochGuard;
  readonly outbox: Outbox;
  readonly policies: Policies;
  /** Marks parents of one type (the rebuild after a loss). */
  readonly mark: (type: string, ids: ParentId[]) => Promise<unknown>;
  /** After a Redis data loss, mark every registered parent again (onRedisLoss 'rebuild'). */
  readonly rebuildOnLoss: boolean;
  readonly logger: Logger;
  /** Where Redis is, and why it last could not be reached, for messages. */
  readonly redis: RedisSite;
}

/**
 * The work every drain does first, whatever this process registered: set the clock against
 * Redis, check the epoch (a data loss queues a rebuild and republishes the type policies),
 * relay and prune the outbox, and move the rebuild on by a bounded step.
 */
export class Housekeeper {
  constructor(private readonly options: HousekeeperOptions) {}

  /** Runs before a drain; throws a ConnectionError when Redis cannot be reached (nothing is drained then). */
  async run(): Promise<Housework> {
    const work: Housework = { relayed: 0, pruned: 0, rebuilt: 0, redisLost: false };
    const redis = <T>(what: Promise<T>): Promise<T> => onRedis('drain', this.options.redis, what);
    await redis(this.options.clock.sync());
    const types = this.options.rebuildOnLoss ? this.options.registry.parentNames() : [];
    let check = await this.options.guard.check(types);
    work.redisLost = check.status === 'lost' || check.status === 'behind';
    await redis(this.options.policies.publish(!check.policies));
    try {
      work.relayed = await this.options.outbox.relay(check.epoch);
      const pruned = await this.options.outbox.prune(check.epoch);
      work.pruned = pruned.deleted;
      if (pruned.behind !== undefined) {
        // An outbox row Redis took has a fence value above Redis' counter now: Redis lost it.
        check = await this.options.guard.check(types, pruned.behind);
        work.redisLost ||= check.status === 'behind' || check.status === 'lost';
        await redis(this.options.policies.publish(!check.policies));
        work.relayed += await this.options.outbox.relay(check.epoch);
      }
    } catch (error) {
      // Redis or the database is failing; the drain will say which. The rows are kept.
      if (!this.options.outbox.explainMissingTable(error)) {
        this.options.logger.warn({ err: errorMessage(error) }, 'outbox relay failed; its marks stay in the outbox');
      }
    }
    if (check.rebuilding > 0) {
      work.rebuilt = await this.rebuildStep().catch((error: unknown) => {
        this.options.logger.warn({ err: errorMessage(error) }, 'rebuild after a Redis data loss failed; the next drain goes on');
        return 0;
      });
    }
    return work;
  }

  /** Deletes the outbox rows Redis can no longer lose (after a drain); never throws. */
  async prune(): Promise<number> {
    const pruned = await this.options.outbox.prune(this.options.guard.epoch).catch((error: unknown) => {
      if (!this.options.outbox.explainMissingTable(error))
        this.options.logger.warn({ err: errorMessage(error) }, 'outbox pruning failed');
      return { deleted: 0, behind: undefined };
    });
    // A row Redis lost is healed by the next drain's check, which finds it again.
    return pruned.deleted;
  }

  /** Marks up to {@link REBUILD_STEP} more rows of each parent type still to rebuild that this process registers. */
  private async rebuildStep(): Promise<number> {
    let marked = 0;
    for (const [type, cursor] of await this.options.epochs.rebuildCursors()) {
      const parent = this.options.registry.parentTypes().find((t) => t.name === type);
      if (!parent) continue;
      const after = cursor === '' ? undefined : this.options.registry.idOf(parent, cursor);
      const ids = await pageIds(this.options.dataSource, parent, after, REBUILD_STEP);
      if (ids.length > 0) await this.options.mark(type, ids);
      const last = ids.length === REBUILD_STEP ? String(ids[ids.length - 1]) : undefined;
      if (await this.options.epochs.advanceRebuild(type, cursor, last)) {
        marked += ids.length;
        if (last === undefined) this.options.logger.warn({ parent: type }, 'rebuild after the Redis data loss done');
      }
    }
    return marked;
  }
}
