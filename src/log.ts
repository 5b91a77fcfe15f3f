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

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
type Level = (typeof LEVELS)[number];

function levelOf(name: string | undefined): number {
  const at = LEVELS.indexOf((name ?? 'warn') as Level);
  return at < 0 ? LEVELS.indexOf('warn') : at;
}

/** A field's value on one line: strings bare when plain, everything else as JSON (never throws). */
function show(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:/@+-]*$/.test(value) ? value : JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * A logger writing one human line per record to stderr: `<prefix>: warn: message (key=value, ...)`.
 * For terminals and the CLI; level from `COALESCE_LOG_LEVEL` (default warn).
 */
export function humanLogger(
  prefix = 'coalesce',
  level = process.env.COALESCE_LOG_LEVEL,
  write: (line: string) => void = (line) => void process.stderr.write(line),
  bindings: Record<string, unknown> = {},
): CoalesceLogger {
  const min = levelOf(level);
  const method =
    (name: Level): LogFn =>
    (fieldsOrMessage: object | string, message?: string): void => {
      if (LEVELS.indexOf(name) < min) return;
      const fields = typeof fieldsOrMessage === 'string' ? {} : (fieldsOrMessage as Record<string, unknown>);
      const text = typeof fieldsOrMessage === 'string' ? fieldsOrMessage : (message ?? '');
      const all = { ...bindings, ...fields };
      const pairs = Object.entries(all)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${show(v)}`);
      write(`${prefix}: ${name}: ${text}${pairs.length > 0 ? ` (${pairs.join(', ')})` : ''}\n`);
    };
  return {
    trace: method('trace'),
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    fatal: method('fatal'),
    child: (more) => humanLogger(prefix, level, write, { ...bindings, ...more }),
  };
}

/**
 * Logger used when the host gives none: warnings and errors to stderr, so background failures
 * are never silent. Human lines (`coalesce: warn: ...`), or pino's JSON lines with
 * `COALESCE_LOG_FORMAT=json`; `COALESCE_LOG_LEVEL` changes the level.
 */
export function defaultLogger(): CoalesceLogger {
  if (process.env.COALESCE_LOG_FORMAT === 'json') {
    return pino({ name: 'typeorm-coalesce', level: process.env.COALESCE_LOG_LEVEL ?? 'warn' }, pino.destination(2));
  }
  return humanLogger();
}
