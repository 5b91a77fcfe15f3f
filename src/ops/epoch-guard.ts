import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { EpochCheck, FenceFloors } from '../redis/records';
import type { Epochs } from '../redis/epochs';
import { ConnectionError, errorMessage, redisUnreachable, type RedisSite } from '../errors';
import { isMissingColumn, isMissingTable, sqlFor, type Sql } from '../db/dialect';

/** The table that keeps each namespace's epoch outside Redis (made by the library migrations). */
export const EPOCH_TABLE = 'coalesce_epoch';

/** Epochs installed by `reset()` start with this, so other processes tell a reset from a loss. */
const RESET_PREFIX = 'r';

/** What the database records of a namespace: its epoch and the highest fence value seen under it. */
interface Durable {
  readonly epoch: string;
  readonly fence: number;
}

/** What the epoch guard needs. */
export interface EpochGuardOptions {
  readonly epochs: Pick<Epochs, 'check'>;
  readonly dataSource: DataSource;
  readonly namespace: string;
  readonly logger: Logger;
  /** Where Redis is, and why it last could not be reached, for messages. */
  readonly redis: RedisSite;
  /** The id this process's marks leave their generation under in Redis ('' for none). */
  readonly writer?: string;
}

/**
 * Finds out when Redis lost a namespace's data, whole or in part.
 *
 * - Whole: the epoch is a random value written to Redis when the namespace is first used, and
 *   kept in the database too. A Redis restarted without persistence, flushed, or failed over to
 *   an empty replica no longer has it, even when every process restarted meanwhile.
 * - In part: Redis' fence counter (every mark and claim window takes the next value) only grows.
 *   Each process remembers the highest value Redis gave it, and each check records the counter
 *   in the database beside the epoch; a Redis whose counter is below either went back in time
 *   (a failover to a replica that missed the last writes: replication is asynchronous).
 *
 * Exactly one process finds each loss (the check and the new epoch are one script) and queues
 * the rebuild; the others adopt the new epoch.
 */
export class EpochGuard {
  private known = '';
  /** The highest fence value Redis gave this process under `known` (from replies received). */
  private highWater = 0;
  /** The highest generation Redis gave this process's marks under `known` (their writer's, in Redis). */
  private ownHighWater = 0;
  /** The epoch under which Redis gave this process a fence value it had given before ('' when none). */
  private wentBack = '';
  private recorded: Durable = { epoch: '', fence: 0 };
  private readonly sql: Sql;
  private readonly table: string;
  private missingTable = false;
  private missingFence = false;

  private readonly epochs: Pick<Epochs, 'check'>;
  private readonly dataSource: DataSource;
  private readonly namespace: string;
  private readonly logger: Logger;
  private readonly redis: RedisSite;
  private readonly writer: string;

  constructor(options: EpochGuardOptions) {
    this.writer = options.writer ?? '';
    ({
      epochs: this.epochs,
      dataSource: this.dataSource,
      namespace: this.namespace,
      logger: this.logger,
      redis: this.redis,
    } = options);
    this.sql = sqlFor(this.dataSource);
    this.table = this.sql.table(EPOCH_TABLE);
  }

  /** The epoch last seen ('' before the first check). */
  get epoch(): string {
    return this.known;
  }

  /**
   * The floors to check a mark's reply against, read before the command is sent: a reply at or
   * below `all`, or a writer's generation in Redis below `own`, proves Redis went back in time.
   */
  floors(): FenceFloors {
    return { all: this.highWater, own: this.ownHighWater };
  }

  /**
   * Records a fence value Redis gave under `epoch` to a mark sent when the floors were `atSend`;
   * `before` is the generation Redis kept of this process's marks before it. Every value the
   * counter gives is larger than all it gave before, and each mark of the process leaves its
   * generation in Redis, so a value at or below `atSend.all`, or a `before` below `atSend.own`,
   * means Redis lost writes (whatever other processes' marks did to the counter since): this
   * process's next check heals it, and the database is told, so the next check of any process
   * may find it too. Said once per epoch. Never throws.
   */
  observe(value: number, before: number | undefined, atSend: FenceFloors, epoch: string): void {
    if (!(value > 0) || epoch === '') return;
    if (epoch !== this.known) {
      // A new epoch (or the first seen): values of another epoch say nothing of this one.
      this.known = epoch;
      this.highWater = value;
      this.ownHighWater = value;
      return;
    }
    if (value <= atSend.all || (before !== undefined && before < atSend.own)) {
      if (this.wentBack === epoch) return;
      this.wentBack = epoch;
      this.logger.error(
        { fence: value, before: atSend.all, ownBefore: before, ownFloor: atSend.own, redis: this.redis.where },
        'Redis gave a fence value it had given before, or lost the last marks of this process: it lost writes (a failover to a replica that missed them?); the next drain heals it as a data loss',
      );
      // A counter that lost nothing would now be past the floor.
      void this.raiseDurable(epoch, Math.max(atSend.all, atSend.own) + 1);
      return;
    }
    if (value > this.highWater) this.highWater = value;
    if (value > this.ownHighWater) this.ownHighWater = value;
  }

  /**
   * Checks the epoch and the fence counter; on a loss, queues a rebuild of `rebuildTypes` (none:
   * only the outbox is sent again). `floor`: a fence value known to have been given under the
   * current epoch (an outbox row's), checked besides this process's and the database's. Throws
   * a ConnectionError naming the service that failed.
   */
  async check(rebuildTypes: readonly string[], floor = 0): Promise<EpochCheck> {
    const durable = await this.readDurable().catch((error: unknown) => {
      throw new ConnectionError(`reading the namespace's epoch from the database: ${errorMessage(error)}`, { cause: error });
    });
    const known = this.known || durable.epoch;
    const atLeast = Math.max(floor, known === durable.epoch ? durable.fence : 0, known === this.known ? this.highWater : 0);
    const own = known === this.known ? this.ownHighWater : 0;
    const found = await this.epochs
      .check(known, randomBytes(12).toString('hex'), atLeast, rebuildTypes, {
        writer: this.writer,
        floor: own,
        sawBack: known !== '' && this.wentBack === known,
      })
      .catch((error: unknown) => {
        throw redisUnreachable("checking the namespace's epoch", this.redis, error);
      });
    this.report(found, known, atLeast, rebuildTypes);
    await this.adopt(found);
    return found;
  }

  private report(found: EpochCheck, known: string, floor: number, rebuild: readonly string[]): void {
    const healing =
      rebuild.length > 0
        ? 'every registered parent type is being marked again, and the outbox sent again'
        : 'the outbox is sent again';
    if (found.status === 'lost') {
      this.logger.error(
        { epoch: known, newEpoch: found.epoch, rebuild, redis: this.redis.where },
        `Redis lost this namespace's data (its epoch is gone): ${healing}`,
      );
    } else if (found.status === 'behind') {
      this.logger.error(
        { epoch: known, newEpoch: found.epoch, fenceFloor: floor, rebuild, redis: this.redis.where },
        `Redis went back in time: its fence counter is below a value it gave before, or gave one again (a failover to a replica that missed the last writes, or a restore): ${healing}`,
      );
    } else if (found.status === 'changed') {
      if (found.epoch.startsWith(RESET_PREFIX)) {
        this.logger.info(
          { epoch: known, newEpoch: found.epoch },
          'the namespace was reset by another process: adopting its new epoch',
        );
      } else {
        this.logger.warn(
          { epoch: known, newEpoch: found.epoch },
          'Redis has a new epoch for this namespace: another process found a data loss and is healing it',
        );
      }
    }
  }

  private async adopt(found: EpochCheck): Promise<void> {
    if (found.epoch !== this.known) {
      this.highWater = 0;
      this.ownHighWater = 0;
    }
    if (found.epoch !== this.wentBack) this.wentBack = '';
    this.known = found.epoch;
    if (found.fence > this.highWater) this.highWater = found.fence;
    if (found.epoch !== this.recorded.epoch || found.fence > this.recorded.fence) {
      await this.writeDurable({ epoch: found.epoch, fence: found.fence });
    }
  }

  /** Forgets the epoch, in Redis' absence too: the next check starts the namespace afresh (a deliberate reset). */
  async forget(): Promise<void> {
    this.known = '';
    this.highWater = 0;
    this.ownHighWater = 0;
    this.wentBack = '';
    this.recorded = { epoch: '', fence: 0 };
    try {
      await this.dataSource.query(`DELETE FROM ${this.table} WHERE namespace = ${this.sql.param(1)}`, [this.namespace]);
    } catch (error) {
      if (!isMissingTable(error)) throw error;
    }
  }

  /**
   * Installs a new epoch after a deliberate reset (Redis cleared, the record forgotten), marked
   * as a reset's: other processes adopt it without taking it for a data loss.
   */
  async installReset(): Promise<void> {
    const found = await this.epochs.check('', `${RESET_PREFIX}${randomBytes(12).toString('hex')}`, 0, []);
    await this.adopt(found);
  }

  private async readDurable(): Promise<Durable> {
    if (this.missingTable) return { epoch: '', fence: 0 };
    const where = `FROM ${this.table} WHERE namespace = ${this.sql.param(1)}`;
    try {
      const rows = (await this.dataSource.query(
        this.missingFence ? `SELECT epoch, 0 AS fence ${where}` : `SELECT epoch, fence ${where}`,
        [this.namespace],
      )) as { epoch: string; fence: number | string }[];
      const row = rows[0];
      this.recorded = row ? { epoch: row.epoch, fence: Number(row.fence) } : { epoch: '', fence: 0 };
      return this.recorded;
    } catch (error) {
      if (!this.missingFence && isMissingColumn(error)) {
        this.missingFence = true;
        this.logger.warn(
          { table: this.table },
          'the epoch table has no fence column (run the library migrations: CoalesceFence): a Redis failover that lost writes is then found only by processes that saw Redis before it',
        );
        return this.readDurable();
      }
      if (!isMissingTable(error)) throw error;
      this.missingTable = true;
      this.logger.warn(
        { table: this.table },
        'the epoch table does not exist (run the library migrations): a Redis data loss is then found only by a process that saw the namespace before it',
      );
      return { epoch: '', fence: 0 };
    }
  }

  /** Raises the recorded fence of `epoch`, if it is still the recorded one; never throws. */
  private async raiseDurable(epoch: string, fence: number): Promise<void> {
    if (this.missingTable || this.missingFence) return;
    const q = this.sql;
    try {
      await this.dataSource.query(
        `UPDATE ${this.table} SET fence = GREATEST(fence, ${q.param(1)}) WHERE namespace = ${q.param(2)} AND epoch = ${q.param(3)}`,
        [fence, this.namespace, epoch],
      );
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not record the fence value in the database');
    }
  }

  /** Records the epoch and fence value, keeping the larger fence of the same epoch; never throws. */
  private async writeDurable(durable: Durable): Promise<void> {
    if (this.missingTable) return;
    const q = this.sql;
    const fence = !this.missingFence;
    const upsert =
      q.dialect === 'postgres'
        ? fence
          ? `INSERT INTO ${this.table} AS t (namespace, epoch, fence) VALUES ($1, $2, $3)
             ON CONFLICT (namespace) DO UPDATE SET epoch = EXCLUDED.epoch,
               fence = CASE WHEN t.epoch = EXCLUDED.epoch THEN GREATEST(t.fence, EXCLUDED.fence) ELSE EXCLUDED.fence END`
          : `INSERT INTO ${this.table} (namespace, epoch) VALUES ($1, $2) ON CONFLICT (namespace) DO UPDATE SET epoch = EXCLUDED.epoch`
        : fence
          ? // MySQL applies the assignments left to right: fence is set while epoch is still the old one.
            `INSERT INTO ${this.table} (namespace, epoch, fence) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE
               fence = IF(epoch = VALUES(epoch), GREATEST(fence, VALUES(fence)), VALUES(fence)), epoch = VALUES(epoch)`
          : `INSERT INTO ${this.table} (namespace, epoch) VALUES (?, ?) ON DUPLICATE KEY UPDATE epoch = VALUES(epoch)`;
    try {
      await this.dataSource.query(
        upsert,
        fence ? [this.namespace, durable.epoch, durable.fence] : [this.namespace, durable.epoch],
      );
      this.recorded = durable;
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not record the epoch in the database');
    }
  }
}
