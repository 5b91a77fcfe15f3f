import type { ObjectLiteral, QueryRunner } from 'typeorm';
import { isTransactionFatal } from '../db/transaction-fatal';
import { dataSourceOf } from '../typeorm-types';

/** Marks the SELECTs of lookups, so that they are told from the host's statements. */
export const TAG = '/* typeorm-coalesce lookup */';
const SAVEPOINT = 'typeorm_coalesce_lookup';
const OPEN = `SAVEPOINT ${SAVEPOINT}`;

/**
 * What the host's next statement does to the rows a lookup reads: `update` or `delete` them
 * (the lookup runs just before it), or `none` (it ran already, or does not write those rows).
 */
export type Intent = 'update' | 'delete' | 'none';

/**
 * True for a statement of a lookup (a tagged SELECT, or its savepoint). Told by its text: on
 * MySQL, TypeORM runs a save's statements concurrently on one query runner, so "a lookup is
 * running on this query runner" does not make a statement a lookup's.
 */
export function isLookup(sql: string): boolean {
  return sql.includes(TAG) || sql.includes(SAVEPOINT);
}

/** True on PostgreSQL (and CockroachDB), where a failed statement aborts its transaction. */
export function isPostgres(qr: QueryRunner): boolean {
  const type = dataSourceOf(qr).driver.options.type;
  return type === 'postgres' || type === 'cockroachdb';
}

/**
 * The lock a lookup takes on rows the host is about to write, inside a transaction.
 *
 * Why lock: the lookup reads the rows' committed keys (their old parents) just before the host's
 * statement writes them. A plain read could return a stale snapshot (InnoDB's REPEATABLE READ
 * keeps the transaction's first one) or a key another transaction is changing, and that parent
 * would stay stale. The lock adds nothing the host did not ask for: the lookup picks the rows
 * its next statement picks (same primary keys, or the statement's own WHERE), so it only takes
 * the statement's row locks one statement earlier, at the same strength: PostgreSQL's UPDATE
 * of non-key columns locks FOR NO KEY UPDATE, a DELETE FOR UPDATE; MySQL's X lock is FOR UPDATE.
 */
export function lockClause(qr: QueryRunner, intent: Intent): string {
  if (intent === 'none' || !qr.isTransactionActive) return '';
  if (!isPostgres(qr)) return 'FOR UPDATE';
  return intent === 'update' ? 'FOR NO KEY UPDATE' : 'FOR UPDATE';
}

/** A lookup's savepoint while it is open, and whether a host statement ran inside it. */
interface Section {
  opened: boolean;
  crossed: boolean;
}

/**
 * Runs the lookups' SELECTs through the host's query runner so that capture never changes the
 * outcome of the host's transaction:
 * - inside a PostgreSQL transaction each runs in a savepoint, rolled back when it fails for a
 *   reason of its own (a SELECT the database refuses), so the host's transaction goes on;
 * - an error that ended or will end the transaction (deadlock, lock timeout, serialization
 *   failure, lost connection) is left as it is: {@link failsHost} tells the caller to fail the
 *   host's write with it, as the host's own statement would have failed.
 * Savepoints on one query runner run one at a time, and a host statement waits ({@link hold})
 * while one is open: rolling back to it must never undo a statement of the host.
 */
export class LookupSql {
  private readonly busy = new WeakMap<QueryRunner, Promise<void>>();
  private readonly sections = new WeakMap<QueryRunner, Section>();
  /** Errors after which the host's transaction is aborted although the error itself is not fatal. */
  private readonly aborted = new WeakSet<object>();

  /** Before a host statement: what to wait for (the open lookup savepoint on its query runner), if anything. */
  hold(qr: QueryRunner, sql: string): Promise<void> | undefined {
    return isLookup(sql) ? undefined : this.busy.get(qr);
  }

  /** After every statement: a host statement that ran inside an open lookup savepoint is noted. */
  seen(qr: QueryRunner, sql: string): void {
    const section = this.sections.get(qr);
    if (!section) return;
    if (sql === OPEN) section.opened = true;
    else if (section.opened && !isLookup(sql)) section.crossed = true;
  }

  /** Whether a failed lookup must fail the host's write (rethrown), rather than be reported as unresolved. */
  failsHost(qr: QueryRunner, error: unknown): boolean {
    if (!qr.isTransactionActive) return false;
    return isTransactionFatal(error) || (typeof error === 'object' && error !== null && this.aborted.has(error));
  }

  /** Runs one lookup SELECT (see the class comment). */
  async run(qr: QueryRunner, sql: string, parameters: readonly unknown[]): Promise<ObjectLiteral[]> {
    if (!qr.isTransactionActive || !isPostgres(qr)) return (await qr.query(sql, [...parameters])) as ObjectLiteral[];
    const previous = this.busy.get(qr) ?? Promise.resolve();
    const mine = previous.then(() => this.guarded(qr, sql, parameters));
    const done = mine.then(
      () => undefined,
      () => undefined,
    );
    this.busy.set(qr, done);
    void done.then(() => {
      if (this.busy.get(qr) === done) this.busy.delete(qr);
    });
    return mine;
  }

  private async guarded(qr: QueryRunner, sql: string, parameters: readonly unknown[]): Promise<ObjectLiteral[]> {
    const section: Section = { opened: false, crossed: false };
    this.sections.set(qr, section);
    try {
      await qr.query(OPEN);
      let rows: ObjectLiteral[];
      try {
        rows = (await qr.query(sql, [...parameters])) as ObjectLiteral[];
      } catch (error) {
        // A fatal error leaves the transaction as the host's own statement would have: aborted.
        if (isTransactionFatal(error)) throw error;
        // Rolling back would also undo the host's statement that ran inside the savepoint.
        if (section.crossed) {
          if (typeof error === 'object' && error !== null) this.aborted.add(error);
          throw error;
        }
        await qr.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
        throw error;
      }
      await qr.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
      return rows;
    } finally {
      this.sections.delete(qr);
    }
  }
}
