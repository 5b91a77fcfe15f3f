import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from './log';
import type { EpochCheck, Store } from './redis/store';
import { errorMessage } from './errors';
import { isMissingTable, sqlFor, type Sql } from './db/dialect';

/** The table that keeps each namespace's epoch outside Redis (made by the library migrations). */
export const EPOCH_TABLE = 'coalesce_epoch';

/**
 * Finds out when Redis lost a namespace's data. The epoch is a random value written to Redis
 * when the namespace is first used, and kept in the database too: a Redis restarted without
 * persistence, flushed, or failed over to an empty replica no longer has it, even when every
 * process restarted meanwhile. Exactly one process finds each loss (the check and the new
 * epoch are one script) and queues the rebuild; the others adopt the new epoch.
 */
export class EpochGuard {
  private known = '';
  private readonly sql: Sql;
  private readonly table: string;
  private missingTable = false;

  constructor(
    private readonly store: Store,
    private readonly dataSource: DataSource,
    private readonly namespace: string,
    private readonly logger: Logger,
  ) {
    this.sql = sqlFor(dataSource);
    this.table = this.sql.table(EPOCH_TABLE);
  }

  /** The epoch last seen ('' before the first check). */
  get epoch(): string {
    return this.known;
  }

  /**
   * Checks the epoch; on a loss, queues a rebuild of `rebuildTypes` (none: only the outbox is
   * sent again). Returns what was found.
   */
  async check(rebuildTypes: readonly string[]): Promise<EpochCheck> {
    const durable = await this.readDurable();
    const known = this.known || durable;
    const found = await this.store.checkEpoch(known, randomBytes(12).toString('hex'), rebuildTypes);
    if (found.status === 'lost') {
      this.logger.error(
        { epoch: known, newEpoch: found.epoch, rebuild: rebuildTypes },
        rebuildTypes.length > 0
          ? "Redis lost this namespace's data (its epoch is gone): every registered parent type is being marked again, and the outbox sent again"
          : "Redis lost this namespace's data (its epoch is gone): the outbox is sent again",
      );
    } else if (found.status === 'changed') {
      this.logger.warn(
        { epoch: known, newEpoch: found.epoch },
        'Redis has a new epoch for this namespace: another process found a data loss',
      );
    }
    if (found.epoch !== durable) await this.writeDurable(found.epoch);
    this.known = found.epoch;
    return found;
  }

  /** Forgets the epoch, in Redis' absence too: the next check starts the namespace afresh (a deliberate reset). */
  async forget(): Promise<void> {
    this.known = '';
    try {
      await this.dataSource.query(`DELETE FROM ${this.table} WHERE namespace = ${this.sql.param(1)}`, [this.namespace]);
    } catch (error) {
      if (!isMissingTable(error)) throw error;
    }
  }

  private async readDurable(): Promise<string> {
    if (this.missingTable) return '';
    try {
      const rows = (await this.dataSource.query(`SELECT epoch FROM ${this.table} WHERE namespace = ${this.sql.param(1)}`, [
        this.namespace,
      ])) as { epoch: string }[];
      return rows[0]?.epoch ?? '';
    } catch (error) {
      if (!isMissingTable(error)) throw error;
      this.missingTable = true;
      this.logger.warn(
        { table: this.table },
        'the epoch table does not exist (run the library migrations): a Redis data loss is then found only by a process that saw the namespace before it',
      );
      return '';
    }
  }

  private async writeDurable(epoch: string): Promise<void> {
    if (this.missingTable) return;
    const q = this.sql;
    const upsert =
      q.dialect === 'postgres'
        ? `INSERT INTO ${this.table} (namespace, epoch) VALUES ($1, $2) ON CONFLICT (namespace) DO UPDATE SET epoch = EXCLUDED.epoch`
        : `INSERT INTO ${this.table} (namespace, epoch) VALUES (?, ?) ON DUPLICATE KEY UPDATE epoch = VALUES(epoch)`;
    try {
      await this.dataSource.query(upsert, [this.namespace, epoch]);
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, 'could not record the epoch in the database');
    }
  }
}
