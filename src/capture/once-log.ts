import type { CoalesceLogger as Logger } from '../log';

/** Most distinct warnings remembered; past it they are said again rather than kept without bound. */
const MAX_KEYS = 10_000;

/**
 * Logs a warning once per key and at debug level afterwards: loud enough to be seen, without
 * flooding the log with a line per row of a bulk write.
 */
export class OnceLog {
  private readonly seen = new Set<string>();

  constructor(private readonly logger: Logger) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.seen.has(key)) {
      this.logger.debug(fields, message);
      return;
    }
    if (this.seen.size >= MAX_KEYS) this.seen.clear();
    this.seen.add(key);
    this.logger.warn(fields, message);
  }
}
