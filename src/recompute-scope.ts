import { AsyncLocalStorage } from 'node:async_hooks';

// Shared by the drain (which runs recomputes) and capture (which must tell a recompute's own
// writes from the host's); it imports neither, so the two stay independent of each other.
const scope = new AsyncLocalStorage<true>();

/**
 * Runs `fn` as a recompute: every write it makes, through any manager or query runner, is seen
 * by the capture subscriber as the recompute's own and not as a host write of derived columns.
 */
export function runAsRecompute<T>(fn: () => T): T {
  return scope.run(true, fn);
}

/** True inside a recompute started with {@link runAsRecompute}. */
export function isRecomputing(): boolean {
  return scope.getStore() === true;
}
