/** Base class of every error this package throws. */
export class CoalesceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A bad option passed to a constructor or method; the message names the option, the value and what is allowed. */
export class ConfigError extends CoalesceError {}

/** A parent or child registration that cannot work (unknown entity, bad foreign key, duplicate). */
export class RegistrationError extends CoalesceError {}

/** Longest part of a member that messages and log lines quote. */
const MEMBER_QUOTE = 120;

/**
 * A member as messages and log lines quote it: whole when short, else its start and its length,
 * so a member of 100 KB read from Redis never makes a 100 KB log line.
 */
export function quoteMember(member: string): string {
  if (member.length <= MEMBER_QUOTE) return JSON.stringify(member);
  return `${JSON.stringify(member.slice(0, MEMBER_QUOTE))}... (${member.length} characters)`;
}

/** A member read from Redis that cannot be decoded, or names a parent type that is not registered. */
export class MalformedMemberError extends CoalesceError {
  constructor(
    readonly member: string,
    reason: string,
  ) {
    super(`malformed member ${quoteMember(member)}: ${reason}`);
  }
}

/** A recompute that did not settle within `recomputeTimeoutMs`. */
export class RecomputeTimeoutError extends CoalesceError {
  constructor(
    readonly member: string,
    readonly timeoutMs: number,
  ) {
    super(`recompute of ${member} did not finish within ${timeoutMs} ms (recomputeTimeoutMs)`);
  }
}

/**
 * The reason a recompute's `signal` is aborted when its worker no longer owns the parent: the
 * lease passed to another worker, or could not be renewed in time (Redis unreachable). The
 * recompute should stop: another worker may recompute the parent now.
 */
export class LeaseLostError extends CoalesceError {
  constructor(
    readonly member: string,
    reason: string,
  ) {
    super(`lease of ${member} lost: ${reason}`);
  }
}

/** The reason a recompute's `signal` is aborted when its worker stops; the parent goes back to pending. */
export class StoppingError extends CoalesceError {
  constructor(readonly member: string) {
    super(`recompute of ${member} stopped: the worker is shutting down; the parent goes back to pending`);
  }
}

/** `fresh()` gave up: no recompute covering the caller's changes was acknowledged in time. */
export class FreshTimeoutError extends CoalesceError {
  constructor(
    readonly member: string,
    readonly timeoutMs: number,
    what: string,
  ) {
    super(`${member} was not recomputed within ${timeoutMs} ms (${what})`);
  }
}

/** `fresh()` cannot be satisfied: the parent is dead-lettered (its recompute keeps failing). */
export class ParentDeadError extends CoalesceError {
  constructor(
    readonly member: string,
    readonly lastError: string,
  ) {
    super(`${member} is dead-lettered, so it will not be recomputed until retried: ${lastError}`);
  }
}

/** Redis or the database could not be reached. */
export class ConnectionError extends CoalesceError {}

/** Where Redis is, and why a connection to it last failed: what an unreachable Redis is said with. */
export interface RedisSite {
  /** `host:port`, or the cluster's nodes. */
  readonly where: string;
  /** The last error of a connection to it (refused, timed out, no such host); undefined once connected. */
  lastError(): Error | undefined;
}

/** What to check when Redis cannot be reached. */
const REDIS_HINT = '(is redis-server running? check the redis option or REDIS_URL)';

/** Redis' replies that refuse the connection's user: no password given, or a wrong one. */
const REFUSED = /^(NOAUTH|WRONGPASS)\b/;

/**
 * The one way an unreachable Redis is said: a ConnectionError `<what>: cannot reach Redis at
 * <where>: <why> (is redis-server running? ...)`, or `<what>: Redis at <where> refuses us: ...`
 * for a missing or wrong password. Our own errors, and other errors Redis itself replied with,
 * pass as they are.
 */
export function redisUnreachable(what: string, redis: RedisSite, error: unknown): Error {
  if (error instanceof CoalesceError) return error;
  if (error instanceof Error && error.name === 'ReplyError') {
    if (!REFUSED.test(error.message)) return error;
    return new ConnectionError(
      `${what}: Redis at ${redis.where} refuses us: ${error.message} (check the password: redis://[user]:password@host:port, or the redis option)`,
      { cause: error },
    );
  }
  return new ConnectionError(`${what}: cannot reach Redis at ${redis.where}: ${redisTrouble(error, redis)} ${REDIS_HINT}`, {
    cause: error,
  });
}

/** `pending`, or {@link redisUnreachable} when it fails. */
export async function onRedis<T>(what: string, redis: RedisSite, pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (error) {
    throw redisUnreachable(what, redis, error);
  }
}

/**
 * Why Redis cannot be reached, in a few words. ioredis rejects the commands of a connection that
 * is down with "max retries per request" or "Connection is closed", which say only that it gave
 * up: the reason is the connection's own last error (connection refused, timed out, no such host).
 */
export function redisTrouble(error: unknown, redis: RedisSite): string {
  const name = error instanceof Error ? error.name : '';
  const message = error instanceof Error ? error.message : '';
  const gaveUp = name === 'MaxRetriesPerRequestError' || message === 'Connection is closed.';
  const cause = gaveUp ? (redis.lastError() ?? error) : error;
  const said = networkTrouble(cause);
  if (said) return said;
  if (name === 'MaxRetriesPerRequestError' && cause === error)
    return 'no connection (ioredis gave the command up after its retries)';
  return errorMessage(cause);
}

/** Network error codes, as messages say them. */
const NETWORK_TROUBLE: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'the host name could not be resolved now (EAI_AGAIN)',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection broken',
};

/** The network trouble `error` (or what it wraps: a cluster's last node error, a cause) says, in words. */
function networkTrouble(error: unknown): string | undefined {
  let e = error as { code?: unknown; cause?: unknown; lastNodeError?: unknown; errors?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 5; depth += 1) {
    if (typeof e.code === 'string' && NETWORK_TROUBLE[e.code]) return NETWORK_TROUBLE[e.code];
    e = (e.lastNodeError ?? e.cause ?? (Array.isArray(e.errors) ? e.errors[0] : undefined)) as typeof e;
  }
  return undefined;
}

/** Formats any thrown value as one line, for logs and the dead-letter set. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/**
 * Driver error codes that mean a service cannot be reached or will not let us in: a network
 * error, a database that does not exist, a refused login (PostgreSQL SQLSTATEs, MySQL codes).
 */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ETIMEDOUT',
  'ECONNRESET',
  'EAI_AGAIN',
  '3D000', // invalid_catalog_name: no such database
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  'ER_BAD_DB_ERROR',
  'ER_ACCESS_DENIED_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_CON_COUNT_ERROR',
  'PROTOCOL_CONNECTION_LOST',
]);

/** Whether `error` (or its cause) says a database or Redis cannot be reached or refuses us. */
export function isUnreachable(error: unknown): boolean {
  for (
    let e = error as { code?: unknown; cause?: unknown; driverError?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth += 1
  ) {
    if (e instanceof ConnectionError) return true;
    if (typeof e.code === 'string' && UNREACHABLE_CODES.has(e.code)) return true;
    e = (e.driverError ?? e.cause) as typeof e;
  }
  return false;
}
