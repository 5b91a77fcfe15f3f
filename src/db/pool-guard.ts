import type { DataSource } from 'typeorm';
import { errorMessage } from '../errors';
import { defaultLogger, type CoalesceLogger } from '../log';

// Why this exists (pg 8 / pg-pool 3 / TypeORM 0.3-1.x): a pg client that emits 'error' with no
// listener throws, and Node ends the process. pg-pool removes its idle listener when it hands a
// client out; TypeORM's query runner attaches its own only in a `.then` after the pool's
// callback. A new client whose backend is terminated right after it became ready (failover,
// pg_terminate_backend) gets the FATAL in the same socket read as its ReadyForQuery, inside that
// gap. TypeORM's initialize() also holds a client with no listener while it installs extensions.
// A permanent listener on every client closes both gaps; pg-pool and TypeORM keep their own
// listeners and do with the error exactly what they did before.

/** The part of a pg client the guard uses. */
interface PgClient {
  on(event: 'error', listener: (error: unknown) => void): unknown;
}

/** The part of a pg-pool Pool the guard uses (`_clients`: every client it holds, idle or lent). */
interface PgPool {
  on(event: 'connect', listener: (client: PgClient) => void): unknown;
  _clients?: PgClient[];
}

/** The part of TypeORM's PostgresDriver the guard uses. */
interface PostgresDriver {
  master?: PgPool;
  slaves?: PgPool[];
  createPool?: (...args: unknown[]) => Promise<PgPool>;
}

/** One warning per burst of broken connections; the rest of the burst at debug level. */
const BURST_MS = 10_000;

const guardedDrivers = new WeakSet<object>();
const guardedPools = new WeakSet<object>();
const guardedClients = new WeakSet<object>();

/** Logs a burst of connection errors once at warn, then at debug until the burst is over. */
class BurstLog {
  private quietUntil = 0;
  private hidden = 0;

  constructor(private readonly logger: CoalesceLogger) {}

  report(error: unknown): void {
    const fields = { err: errorMessage(error), code: (error as { code?: unknown } | null)?.code };
    const now = Date.now();
    if (now < this.quietUntil) {
      this.hidden += 1;
      this.logger.debug(fields, 'a PostgreSQL connection broke');
      return;
    }
    this.logger.warn(
      { ...fields, ...(this.hidden > 0 ? { sinceLastWarning: this.hidden } : {}) },
      'a PostgreSQL connection broke (backend terminated, failover or network): the pool drops it and a query it was running fails; further breaks within 10 s are logged at debug',
    );
    this.hidden = 0;
    this.quietUntil = now + BURST_MS;
  }
}

function guardPool(pool: PgPool | undefined, burst: BurstLog): void {
  if (!pool || typeof pool.on !== 'function' || guardedPools.has(pool)) return;
  guardedPools.add(pool);
  const guard = (client: PgClient): void => {
    if (guardedClients.has(client)) return;
    guardedClients.add(client);
    client.on('error', (error) => burst.report(error));
  };
  // pg-pool emits 'connect' synchronously once a new client is ready, before it removes its idle
  // listener and hands the client out: the client is never without a listener from then on.
  pool.on('connect', guard);
  for (const client of pool._clients ?? []) guard(client);
}

/**
 * Makes every client of a PostgreSQL DataSource's connection pools (the master's and each
 * replica's) always have an `'error'` listener, so a backend terminated by a failover or by
 * `pg_terminate_backend` can never end the process with an unhandled `'error'` event. With pg 8
 * and TypeORM 0.3 / 1.x, a client that breaks between leaving the pool and being taken by
 * TypeORM's query runner has none, and Node exits.
 *
 * The error still reaches TypeORM and pg-pool as before: the query on the broken connection
 * fails (a recompute on it is retried), the pool drops the client. The guard logs a burst of
 * broken connections once at warn level, the rest at debug.
 *
 * A Coalescer installs it on its DataSource; call it yourself for a DataSource used by code
 * that runs before a Coalescer exists, or without one. Call it before or after
 * `dataSource.initialize()`: pools made later (a re-initialized DataSource) are guarded too.
 * Once per DataSource (further calls do nothing); nothing for MySQL / MariaDB.
 *
 * @param dataSource - a TypeORM DataSource; only `type: 'postgres'` is guarded.
 * @param logger - where broken connections are logged; stderr (warnings) by default.
 */
export function guardPostgresPool(dataSource: DataSource, logger?: CoalesceLogger): void {
  if ((dataSource.options as { type?: string } | undefined)?.type !== 'postgres') return;
  const driver = dataSource.driver as unknown as PostgresDriver | undefined;
  if (!driver || guardedDrivers.has(driver)) return;
  guardedDrivers.add(driver);
  const burst = new BurstLog(logger ?? defaultLogger());
  guardPool(driver.master, burst);
  for (const slave of driver.slaves ?? []) guardPool(slave, burst);
  // Pools made by a later initialize(): TypeORM creates them in createPool, which resolves
  // before initialize() runs its first query.
  const createPool = driver.createPool;
  if (typeof createPool === 'function') {
    driver.createPool = async function (this: PostgresDriver, ...args: unknown[]): Promise<PgPool> {
      const pool = await createPool.apply(this, args);
      guardPool(pool, burst);
      return pool;
    };
  }
}
