import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Coalescer } from '../coalescer';
import { CoalesceError, ConnectionError, isUnreachable } from '../errors';

/** A usage error: bad arguments, a module without a Coalescer, an unknown parent. Exit code 2. */
export class UsageError extends CoalesceError {}

/** What `--app` must export, as the CLI's help says it. */
export const APP_SHAPE =
  'a JavaScript module whose default export is a Coalescer, or a function (possibly async) returning one, ' +
  'with its DataSource initialized, its parents and children registered, and attach() called';

function isCoalescer(value: unknown): value is Coalescer {
  if (value instanceof Coalescer) return true;
  // The host's copy of the package may not be this one: look at the shape.
  const c = value as Partial<Coalescer> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.drain === 'function' &&
    typeof c.stats === 'function' &&
    typeof c.mark === 'function' &&
    typeof c.runner === 'function'
  );
}

/** Loads the host's module and returns its Coalescer; a UsageError says what is wrong with it. */
export async function loadApp(module: string): Promise<Coalescer> {
  const path = resolve(module);
  if (!existsSync(path)) throw new UsageError(`--app ${module}: no such file (${path})`);
  let loaded: unknown;
  try {
    loaded = await import(pathToFileURL(path).href);
  } catch (error) {
    throw new UsageError(`--app ${module}: the module failed to load: ${(error as Error).message}`, { cause: error });
  }
  // A CommonJS module imported as ESM puts its exports under `default`, and TypeScript's
  // compiled `export default` under `default` again.
  let candidate = (loaded as { default?: unknown }).default ?? loaded;
  if (!isCoalescer(candidate) && typeof candidate !== 'function') {
    candidate = (candidate as { default?: unknown } | null)?.default ?? candidate;
  }
  if (typeof candidate === 'function' && !isCoalescer(candidate)) {
    try {
      candidate = await (candidate as () => unknown)();
    } catch (error) {
      const text = `--app ${module}: creating the Coalescer failed: ${(error as Error).message}`;
      // A database that does not exist, or refuses the login, is as unreachable as one that is down.
      if (isUnreachable(error)) throw new ConnectionError(text, { cause: error });
      throw new UsageError(text, { cause: error });
    }
  }
  if (!isCoalescer(candidate)) {
    throw new UsageError(`--app ${module}: the module does not export a Coalescer; expected ${APP_SHAPE}`);
  }
  return candidate;
}

/** Closes the Coalescer and the DataSource an app module opened; never throws. */
export async function closeApp(coalescer: Coalescer): Promise<void> {
  await coalescer.close().catch(() => undefined);
  const ds = coalescer.options.dataSource;
  if (ds.isInitialized) await ds.destroy().catch(() => undefined);
}
