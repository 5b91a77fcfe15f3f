/**
 * Errors after which a transaction cannot go on as if nothing happened: the database rolled it
 * back (a deadlock), will refuse its next statements (PostgreSQL after any error), or the
 * connection that held it is gone. The host's own statement would have failed the same way, so
 * a statement run on the host's behalf that fails so must fail the host's write too.
 */

/** PostgreSQL SQLSTATEs: lock and serialization failures, cancels, an aborted transaction. */
const POSTGRES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout, NOWAIT)
  '57014', // query_canceled (statement_timeout, pg_cancel_backend)
  '25P02', // in_failed_sql_transaction
  '57P01', // admin_shutdown (pg_terminate_backend)
  '57P02', // crash_shutdown
]);

/** MySQL / MariaDB error numbers. */
const MYSQL = new Set([
  1213, // ER_LOCK_DEADLOCK: InnoDB rolled the whole transaction back
  1205, // ER_LOCK_WAIT_TIMEOUT
  3572, // ER_LOCK_NOWAIT
  1317, // ER_QUERY_INTERRUPTED (KILL QUERY)
  3024, // ER_QUERY_TIMEOUT (MySQL max_execution_time)
  1969, // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
  1927, // ER_CONNECTION_KILLED (MariaDB)
  1053, // ER_SERVER_SHUTDOWN
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
]);

/** Node and driver codes of a connection lost mid-transaction. */
const CONNECTION = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'PROTOCOL_CONNECTION_LOST', 'ER_CONNECTION_KILLED']);

/** pg reports a closed connection by message alone. */
const PG_CLOSED = /^Connection terminated|^Client has encountered a connection error|^Client was closed/;

interface DriverErrorLike {
  readonly code?: unknown;
  readonly errno?: unknown;
  readonly message?: unknown;
  readonly driverError?: unknown;
  readonly cause?: unknown;
}

/**
 * Whether `error` ended (or will end) the transaction it happened in: a deadlock, a lock wait
 * timeout, a serialization failure, a cancelled statement, a statement in an already failed
 * PostgreSQL transaction, or a lost connection. Looks through TypeORM's `QueryFailedError`
 * (`driverError`) and `cause`.
 */
export function isTransactionFatal(error: unknown): boolean {
  let e = error as DriverErrorLike | null | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; depth += 1) {
    const { code, errno, message } = e;
    if (typeof code === 'string' && (POSTGRES.has(code) || code.startsWith('08') || CONNECTION.has(code))) return true;
    if (typeof errno === 'number' && MYSQL.has(errno)) return true;
    if (typeof message === 'string' && PG_CLOSED.test(message)) return true;
    e = (e.driverError ?? e.cause) as DriverErrorLike | null | undefined;
  }
  return false;
}
