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

/** A member read from Redis that cannot be decoded, or names a parent type that is not registered. */
export class MalformedMemberError extends CoalesceError {
  constructor(
    readonly member: string,
    reason: string,
  ) {
    super(`malformed member ${JSON.stringify(member)}: ${reason}`);
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

/** Formats any thrown value as one line, for logs and the dead-letter set. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
