import type { DataSource, QueryRunner } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { MarkEntry, Store } from '../redis/store';
import { errorMessage } from '../errors';

/** Rows relayed per PostgreSQL transaction. */
const RELAY_BATCH = 500;
/** PostgreSQL: undefined_table. */
const UNDEFINED_TABLE = '42P01';

/**
 * The durable outbox: marks that must not be lost wait in a PostgreSQL table until Redis takes
 * them. The relay deletes and sends in one PostgreSQL transaction, so a send that fails rolls
 * the delete back and keeps the rows.
 */
export class Outbox {
  readonly table: string;
  private missingTableLogged = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly namespace: string,
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly clock: () => number,
    table: string,
  ) {
    const schema = (dataSource.options as { schema?: string }).schema;
    this.table = schema ? `"${schema}"."${table}"` : `"${table}"`;
  }

  /** Inserts marks in one statement, through `runner` (inside its transaction) or the pool. Returns their row ids. */
  async write(entries: readonly MarkEntry[], runner?: QueryRunner): Promise<string[]> {
    if (entries.length === 0) return [];
    const values: string[] = [];
    const params: unknown[] = [];
    for (const e of entries) {
      const n = params.length;
      values.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4})`);
      params.push(this.namespace, e.member, e.increment, e.base);
    }
    const sql = `INSERT INTO ${this.table} (namespace, member, increment, base) VALUES ${values.join(', ')} RETURNING id`;
    const rows = (await (runner ?? this.dataSource).query(sql, params)) as { id: string }[];
    return rows.map((r) => String(r.id));
  }

  /** Deletes rows whose marks reached Redis. */
  async remove(ids: readonly string[]): Promise<void> {
    if (ids.length > 0) await this.dataSource.query(`DELETE FROM ${this.table} WHERE id = ANY($1::bigint[])`, [ids]);
  }

  /**
   * Sends every waiting mark of the namespace to Redis, a batch per transaction (rows locked by
   * another relay are skipped). Returns how many were relayed; a Redis failure keeps the rows
   * and is thrown.
   */
  async relay(): Promise<number> {
    let relayed = 0;
    for (;;) {
      const moved = await this.dataSource.transaction(async (manager) => {
        const [rows] = (await manager.query(
          `DELETE FROM ${this.table} WHERE id IN (
             SELECT id FROM ${this.table} WHERE namespace = $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING member, increment, base`,
          [this.namespace, RELAY_BATCH],
        )) as [{ member: string; increment: number; base: number }[], number];
        if (rows.length > 0) {
          await this.store.mark(
            rows.map((r) => ({ member: r.member, increment: Number(r.increment), base: Number(r.base) })),
            this.clock(),
          );
        }
        return rows.length;
      });
      relayed += moved;
      if (moved < RELAY_BATCH) return relayed;
    }
  }

  /** Rows waiting, or null when the table does not exist (its migration was not run). */
  async size(): Promise<number | null> {
    try {
      const [row] = (await this.dataSource.query(`SELECT count(*)::int AS n FROM ${this.table} WHERE namespace = $1`, [
        this.namespace,
      ])) as { n: number }[];
      return row?.n ?? 0;
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
        'the outbox table does not exist: run the CoalesceOutbox migration (see README); undelivered marks cannot be kept',
      );
    }
    return true;
  }
}

function isMissingTable(error: unknown): boolean {
  const e = error as { code?: unknown; driverError?: { code?: unknown } };
  return e?.code === UNDEFINED_TABLE || e?.driverError?.code === UNDEFINED_TABLE;
}
