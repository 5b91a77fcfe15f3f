import pino from 'pino';

/**
 * One log method, in pino's calling convention: an object of fields and a message, or a message
 * alone.
 */
export interface LogFn {
  (fields: object, message?: string): void;
  (message: string): void;
}

/**
 * The logger typeorm-coalesce writes to, and the one a recompute is given: a pino `Logger` fits
 * as is; any logger with these methods does (wrap winston or NestJS's logger in a small adapter).
 */
// Our own shape rather than pino's type: our declaration files then never load pino's, which
// need a newer TypeScript than the hosts we support (and esModuleInterop).
export interface CoalesceLogger {
  fatal: LogFn;
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  trace: LogFn;
  /** A logger adding `bindings` to every line. */
  child(bindings: Record<string, unknown>): CoalesceLogger;
}

/**
 * Logger used when the host gives none: warnings and errors to stderr, so background failures
 * are never silent. `COALESCE_LOG_LEVEL` changes the level.
 */
export function defaultLogger(): CoalesceLogger {
  return pino({ name: 'typeorm-coalesce', level: process.env.COALESCE_LOG_LEVEL ?? 'warn' }, pino.destination(2));
}
