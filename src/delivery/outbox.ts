import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { MarkEntry } from '../redis/records';
import type { Marks } from '../redis/marks';
import type { Reads } from '../redis/reads';
import { chunks } from '../util/chunks';
import { errorMessage } from '../errors';
import { isMissingColumn, isMissingTable, sqlFor, type Sql } from '../db/dialect';

/**
 * The PostgreSQL channel the triggers of earlier versions notify (with the namespace) when they
 * wrote outbox rows; the relay still listens on it. Triggers made now do not notify.
 */
export const OUTBOX_CHANNEL = 'coalesce_outbox';

/** Rows written per INSERT: 6 parameters each, far under every driver's limit (65,535). */
const WRITE_BATCH = 1000;
/** Rows relayed per database transaction. */
const RELAY_BATCH = 500;
/** Members per lookup of unsent rows. */
const LOOKUP_CHUNK = 1_000;
/**
 * The order of unsent rows: by id, sent_epoch being NULL throughout. Naming it lets PostgreSQL
 * read them in the (namespace, sent_epoch, id) index's order rather than walk the primary key
 * past every sent row.
 */
const UNSENT_ORDER = 'sent_epoch, id';
/** Rows read per pruning page, and most pages pruned per call. */
const PRUNE_PAGE = 1000;
const PRUNE_PAGES = 20;

interface Row {
  id: string | number;
  member: string;
  increment: number | string;
  base: number | string;
}

/** What the outbox needs. */
export interface OutboxOptions {
  readonly dataSource: DataSource;
  readonly namespace: string;
  /** Where relayed marks go. */
  readonly marks: Pick<Marks, 'mark'>;
  /** Which parents still wait in Redis, for pruning. */
  readonly reads: Pick<Reads, 'busy'>;
  readonly logger: Logger;
  /** Server time in ms. */
  readonly clock: () => number;
  /** The table, unquoted, in the DataSource's schema. */
  readonly table: string;
}

/**
 * The durable outbox: marks wait in a database table (PostgreSQL or MySQL/MariaDB) until Redis
 * has them, and stay until Redis cannot lose them any more.
 *
 * - A row is written when Redis did not take a mark, or (strict delivery) inside the host's
 *   transaction for every mark.
 * - Once Redis has a row's mark, the row records the namespace's epoch (`sent_epoch`). The relay
 *   sends every row with no epoch, or an epoch Redis no longer has (it lost its data since), in
 *   a database transaction with the rows locked (SKIP LOCKED, so several relays share the work).
 * - Pruning deletes a sent row once its parent waits for nothing in Redis under the same epoch
 *   (every mark it received was covered by an acknowledged recompute), and of several rows of one
 *   parent still waiting keeps only the newest: one is enough to mark it again after a loss.
 */
export class Outbox {
  readonly table: string;
  private readonly sql: Sql;
  private missingTableLogged = false;
  private pruneCursor: string | number = 0;
  private hasFence: Promise<boolean> | undefined;

  private readonly dataSource: DataSource;
  private readonly namespace: string;
  private readonly marks: Pick<Marks, 'mark'>;
  private readonly reads: Pick<Reads, 'busy'>;
  private readonly logger: Logger;
  private readonly clock: () => number;

  constructor(options: OutboxOptions) {
    ({
      dataSource: this.dataSource,
      namespace: this.namespace,
      marks: this.marks,
      reads: this.reads,
      logger: this.logger,
      clock: this.clock,
    } = options);
    this.sql = sqlFor(this.dataSource);
    this.table = this.sql.table(options.table);
  }

  /**
   * Inserts marks (in statements of {@link WRITE_BATCH} rows), through `runner` (inside its
   * transaction) or the pool. Returns the batch id that names these rows.
   */
  async write(entries: readonly MarkEntry[], runner?: QueryRunner): Promise<string> {
    const batch = randomUUID();
    const q = this.sql;
    for (const rows of chunks(entries, WRITE_BATCH)) {
      const values: string[] = [];
      const params: unknown[] = [];
      for (const e of rows) {
        values.push(`(${q.params(5, params.length + 1)})`);
        params.push(this.namespace, e.member, e.increment, e.base, batch);
      }
      await (runner ?? this.dataSource).query(
        `INSERT INTO ${this.table} (namespace, member, increment, base, batch) VALUES ${values.join(', ')}`,
        params,
      );
    }
    return batch;
  }

  /**
   * Records that Redis (under `epoch`) has the marks of a written batch, and the fence value
   * their mark was given (`generation`): a Redis whose counter is later below it lost them.
   */
  async sent(batch: string, epoch: string, generation: number): Promise<void> {
    if (epoch === '') return;
    const q = this.sql;
    const fence = await this.fenceColumn();
    await this.statement(
      `UPDATE ${this.table} SET sent_epoch = ${q.param(1)}${fence ? `, sent_fence = ${q.param(4)}` : ''}
        WHERE batch = ${q.param(2)} AND namespace = ${q.param(3)}`,
      fence ? [epoch, batch, this.namespace, generation] : [epoch, batch, this.namespace],
    );
  }

  /**
   * Runs `work` in a transaction of its own; on MySQL/MariaDB at READ COMMITTED. At InnoDB's
   * default REPEATABLE READ, the locking reads of the relay and the pruning take gap locks
   * that hold up the rows the triggers insert in the host's writing transactions, until a
   * deadlock fails one of them.
   */
  private transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.sql.dialect === 'mysql' ? this.dataSource.transaction('READ COMMITTED', work) : this.dataSource.transaction(work);
  }

  /** One statement that locks outbox rows, run as {@link transaction} says. */
  private async statement(sql: string, params: unknown[]): Promise<void> {
    if (this.sql.dialect === 'mysql') await this.transaction((manager) => manager.query(sql, params));
    else await this.dataSource.query(sql, params);
  }

  /** Whether the table has `sent_fence` (the CoalesceFence migration ran); probed once. */
  private fenceColumn(): Promise<boolean> {
    this.hasFence ??= this.dataSource.query(`SELECT sent_fence FROM ${this.table} WHERE 1 = 0`).then(
      () => true,
      (error: unknown) => {
        if (isMissingColumn(error)) {
          this.logger.warn(
            { table: this.table },
            'the outbox table has no sent_fence column (run the library migrations: CoalesceFence): a Redis failover that lost marks it had taken is then found later, or not at all',
          );
          return false;
        }
        // The table itself is missing, or the database is away: probe again next time.
        this.hasFence = undefined;
        return false;
      },
    );
    return this.hasFence;
  }

  /**
   * Sends every row Redis does not hold under `epoch` ('' when it is not known yet: then only
   * rows never sent), or only those of `member`, a batch per database transaction. Returns how many marks were relayed; a
   * Redis failure rolls the batch back, keeps the rows and is thrown.
   */
  relay(epoch: string, member?: string): Promise<number> {
    return this.send(
      epoch,
      (param) =>
        (epoch === '' ? 'sent_epoch IS NULL' : `(sent_epoch IS NULL OR sent_epoch <> ${param(epoch)})`) +
        (member === undefined ? '' : ` AND member = ${param(member)}`),
      'id',
    );
  }

  /**
   * Sends the rows never sent to Redis (what the triggers wrote since the last relay), as
   * {@link relay} does, reading them through the (namespace, sent_epoch, id) index: however many
   * sent rows the outbox keeps, a batch reads only unsent ones. Rows of an epoch Redis lost are
   * left to {@link relay} (each drain's).
   */
  relayUnsent(epoch: string): Promise<number> {
    return this.send(epoch, () => 'sent_epoch IS NULL', UNSENT_ORDER);
  }

  /** Sends the rows `where` selects, in `order`, a batch per transaction (see {@link relay}). */
  private async send(epoch: string, where: (param: (value: string) => string) => string, order: string): Promise<number> {
    const q = this.sql;
    let relayed = 0;
    for (;;) {
      const { moved, landed } = await this.transaction(async (manager) => {
        const params: string[] = [this.namespace];
        const param = (value: string): string => {
          params.push(value);
          return q.param(params.length);
        };
        const rows = (await manager.query(
          `SELECT id, member, increment, base FROM ${this.table}
            WHERE namespace = ${q.param(1)} AND ${where(param)}
            ORDER BY ${order} LIMIT ${RELAY_BATCH} ${q.skipLocked}`,
          params,
        )) as Row[];
        if (rows.length === 0) return { moved: 0, landed: epoch };
        const marked = await this.marks.mark(
          rows.map((r) => ({ member: r.member, increment: Number(r.increment), base: Number(r.base) })),
          this.clock(),
        );
        if (marked.epoch !== '') await this.setEpoch(manager, rows, marked.epoch, marked.generation);
        return { moved: rows.length, landed: marked.epoch };
      });
      relayed += moved;
      // A Redis with no epoch yet: the rows stay unsent until the next drain installs one.
      if (moved < RELAY_BATCH || landed === '') return relayed;
    }
  }

  /**
   * The id of the oldest row never sent to Redis, or undefined when every row was: one probe of
   * the (namespace, sent_epoch, id) index, cheap enough to poll.
   */
  async oldestUnsent(): Promise<string | undefined> {
    const q = this.sql;
    const [row] = (await this.dataSource.query(
      `SELECT id FROM ${this.table} WHERE namespace = ${q.param(1)} AND sent_epoch IS NULL ORDER BY ${UNSENT_ORDER} LIMIT 1`,
      [this.namespace],
    )) as Pick<Row, 'id'>[];
    return row === undefined ? undefined : String(row.id);
  }

  private async setEpoch(manager: EntityManager, rows: readonly Row[], epoch: string, generation: number): Promise<void> {
    const q = this.sql;
    const fence = await this.fenceColumn();
    await manager.query(
      `UPDATE ${this.table} SET sent_epoch = ${q.param(1)}${fence ? `, sent_fence = ${q.param(2)}` : ''}
        WHERE id IN (${q.params(rows.length, fence ? 3 : 2)})`,
      [epoch, ...(fence ? [generation] : []), ...rows.map((r) => r.id)],
    );
  }

  /**
   * Deletes sent rows Redis cannot lose any more (see the class comment), a bounded number of
   * pages per call, continuing where the last call stopped. Returns how many rows were deleted,
   * and `behind`, the fence value of a row Redis' counter is below (it lost that row's mark:
   * nothing more is pruned, the caller heals the loss).
   */
  async prune(epoch: string): Promise<{ deleted: number; behind: number | undefined }> {
    let deleted = 0;
    if (epoch === '') return { deleted, behind: undefined };
    const q = this.sql;
    const fence = await this.fenceColumn();
    for (let page = 0; page < PRUNE_PAGES; page += 1) {
      const rows = (await this.dataSource.query(
        `SELECT id, member${fence ? ', sent_fence' : ''} FROM ${this.table}
          WHERE namespace = ${q.param(1)} AND sent_epoch = ${q.param(2)} AND id > ${q.param(3)}
          ORDER BY id LIMIT ${PRUNE_PAGE}`,
        [this.namespace, epoch, this.pruneCursor],
      )) as (Pick<Row, 'id' | 'member'> & { sent_fence?: number | string | null })[];
      if (rows.length === 0) {
        this.pruneCursor = 0;
        return { deleted, behind: undefined };
      }
      const members = [...new Set(rows.map((r) => r.member))];
      // Read after the rows: every fence value they hold was given before this answer.
      const found = await this.reads.busy(members, epoch);
      if (found === 'lost') return { deleted, behind: undefined };
      const highest = Math.max(0, ...rows.map((r) => Number(r.sent_fence ?? 0)));
      if (highest > found.fence) return { deleted, behind: highest };
      const waiting = new Set(members.filter((_, i) => found.busy[i]));
      const newest = new Map<string, Row['id']>();
      for (const r of rows) if (waiting.has(r.member)) newest.set(r.member, r.id);
      const doomed = rows.filter((r) => !waiting.has(r.member) || newest.get(r.member) !== r.id).map((r) => r.id);
      for (const ids of chunks(doomed, PRUNE_PAGE)) {
        // Only rows still of this epoch: one a relay sent again meanwhile is kept.
        await this.statement(
          `DELETE FROM ${this.table} WHERE sent_epoch = ${q.param(1)} AND id IN (${q.params(ids.length, 2)})`,
          [epoch, ...ids],
        );
      }
      deleted += doomed.length;
      this.pruneCursor = rows[rows.length - 1]?.id ?? 0;
      if (rows.length < PRUNE_PAGE) {
        this.pruneCursor = 0;
        return { deleted, behind: undefined };
      }
    }
    return { deleted, behind: undefined };
  }

  /**
   * Of `members`, those with a mark the outbox keeps and Redis was never given (kept while Redis
   * was away): their parents are waiting for a recompute Redis does not know of yet.
   */
  async unsent(members: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    const q = this.sql;
    for (let from = 0; from < members.length; from += LOOKUP_CHUNK) {
      const chunk = members.slice(from, from + LOOKUP_CHUNK);
      try {
        const rows = (await this.dataSource.query(
          `SELECT DISTINCT member FROM ${this.table}
            WHERE namespace = ${q.param(1)} AND sent_epoch IS NULL AND member IN (${q.params(chunk.length, 2)})`,
          [this.namespace, ...chunk],
        )) as { member: string }[];
        for (const r of rows) found.add(r.member);
      } catch (error) {
        if (isMissingTable(error)) return found;
        throw error;
      }
    }
    return found;
  }

  /** Deletes every row of the namespace (a deliberate reset); a missing table is nothing to delete. */
  async clear(): Promise<void> {
    try {
      await this.dataSource.query(`DELETE FROM ${this.table} WHERE namespace = ${this.sql.param(1)}`, [this.namespace]);
    } catch (error) {
      if (!this.explainMissingTable(error)) throw error;
    }
  }

  /** Rows waiting, or null when the table does not exist (its migration was not run). */
  async size(): Promise<number | null> {
    try {
      const [row] = (await this.dataSource.query(
        `SELECT count(*) AS n FROM ${this.table} WHERE namespace = ${this.sql.param(1)}`,
        [this.namespace],
      )) as { n: number | string }[];
      return Number(row?.n ?? 0);
    } catch (error) {
      if (isMissingTable(error)) return null;
      throw error;
    }
  }

  /** Logs, once, that the table is missing and what to do. Returns whether `error` was that. */
  explainMissingTable(error: unknown): boolean {
    if (!isMissingTable(error)) return false;
    if (!this.missingTableLogged) {
      this.missingTableLogged = true;
      this.logger.error(
        { table: this.table, err: errorMessage(error) },
        'the outbox table does not exist: run the library migrations (coalesceMigrations, see README); undelivered marks cannot be kept',
      );
    }
    return true;
  }
}
