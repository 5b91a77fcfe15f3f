import pino, { type Logger } from 'pino';

/**
 * Logger used when the host gives none: warnings and errors to stderr, so background failures
 * are never silent. `COALESCE_LOG_LEVEL` changes the level.
 */
export function defaultLogger(): Logger {
  return pino({ name: 'typeorm-coalesce', level: process.env.COALESCE_LOG_LEVEL ?? 'warn' }, pino.destination(2));
}
