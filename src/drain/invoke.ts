import type { CoalesceLogger as Logger } from '../log';
import type { MarkEntry } from '../redis/records';
import type { Marks } from '../redis/marks';
import type { ServerClock } from '../redis/clock';
import { RecomputeTimeoutError, errorMessage } from '../errors';
import type { LazyContext } from './context';
import { Watchdog } from './watchdog';

/** How one call of a recompute ended. */
export type Outcome =
  /** It resolved: acknowledge (a claim lost meanwhile is superseded, and marked once more). */
  | { readonly kind: 'ok' }
  /** It threw on its own: a failure, retried with backoff. */
  | { readonly kind: 'error'; readonly error: unknown }
  /** It stopped because its signal was aborted with `reason` (lease lost, worker stopping). */
  | { readonly kind: 'aborted'; readonly reason: unknown }
  /**
   * It ran past its timeout: a failure. `settled` is false when it had not ended a grace period
   * later either; it is then watched, and its parents are marked once more when it does end.
   */
  | { readonly kind: 'timeout'; readonly error: RecomputeTimeoutError; readonly settled: boolean };

/** What an invoker needs. */
export interface InvokerOptions {
  /** A recompute running longer is aborted and counts as failed (recomputeTimeoutMs). */
  readonly timeoutMs: number;
  /** How long a timed-out recompute gets to stop while its leases are kept alive. */
  readonly graceMs: number;
  /** Where the parents of a recompute that ended after its grace get one more mark. */
  readonly marks: Pick<Marks, 'mark'>;
  readonly clock: Pick<ServerClock, 'now'>;
  readonly logger: Logger;
}

/**
 * Calls recomputes with a timeout. A timed-out recompute has its signal aborted and is given a
 * grace period to stop while its leases are still kept alive, so that nothing else recomputes
 * the parent while it may still write. One that ignores its signal past that is left running
 * and watched: when it ends, its parents get one more mark, since its write, from an older
 * read, may have landed after a newer recompute's.
 */
export class Invoker {
  private readonly watchdog: Watchdog;
  /** Recomputes past their grace that have not ended yet, with their members. */
  private readonly overdue = new Map<Promise<void>, string[]>();

  private readonly timeoutMs: number;
  private readonly graceMs: number;
  private readonly marks: Pick<Marks, 'mark'>;
  private readonly clock: Pick<ServerClock, 'now'>;
  private readonly logger: Logger;

  constructor(options: InvokerOptions) {
    ({ timeoutMs: this.timeoutMs, graceMs: this.graceMs, marks: this.marks, clock: this.clock, logger: this.logger } = options);
    this.watchdog = new Watchdog(this.timeoutMs);
  }

  /** Runs `call` with `ctx`; never rejects. `remark` are the marks to send if it ends after its grace. */
  invoke(ctx: LazyContext, call: () => Promise<void>, timeoutMember: string, remark: () => MarkEntry[]): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let timeout: RecomputeTimeoutError | undefined;
      let graceTimer: NodeJS.Timeout | undefined;
      let done = false;
      let late: (() => void) | undefined;
      const finish = (outcome: Outcome): void => {
        if (done) return;
        done = true;
        if (graceTimer) clearTimeout(graceTimer);
        resolve(outcome);
      };
      const watch = this.watchdog.watch(() => {
        timeout = new RecomputeTimeoutError(timeoutMember, this.timeoutMs);
        ctx.abort(timeout);
        graceTimer = setTimeout(() => {
          // Still running: watched, so its parents are marked again when it ends.
          const ended = new Promise<void>((r) => (late = r));
          this.overdue.set(
            ended,
            remark().map((m) => m.member),
          );
          void ended.then(() => this.overdue.delete(ended));
          finish({ kind: 'timeout', error: timeout as RecomputeTimeoutError, settled: false });
        }, this.graceMs);
        graceTimer.unref();
      });
      const settled = (outcome: Outcome): void => {
        this.watchdog.unwatch(watch);
        if (done && late) {
          const end = late;
          const aborted = outcome.kind === 'aborted';
          // One that stopped with the abort's own reason did not write.
          if (aborted) end();
          else {
            const marks = remark();
            this.marks
              .mark(marks, this.clock.now())
              .catch((error: unknown) => {
                this.logger.error(
                  { err: errorMessage(error), members: marks.map((m) => m.member) },
                  'could not mark again after a late recompute',
                );
              })
              .finally(end);
          }
          return;
        }
        if (timeout) {
          finish({ kind: 'timeout', error: timeout, settled: true });
          return;
        }
        finish(outcome);
      };
      let pending: Promise<void>;
      try {
        pending = call();
      } catch (error) {
        pending = Promise.reject(error);
      }
      pending.then(
        () => settled({ kind: 'ok' }),
        (error: unknown) =>
          settled(
            error !== undefined && error === ctx.abortReason ? { kind: 'aborted', reason: error } : { kind: 'error', error },
          ),
      );
    });
  }

  /**
   * Waits up to `maxWaitMs` for recomputes that outlived their grace, so that when they end their
   * parents are marked once more before the connections close. Those still running then are
   * named in a warning: their late writes are not covered.
   */
  async close(maxWaitMs: number): Promise<void> {
    if (this.overdue.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.overdue.keys()]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs))),
    ]);
    clearTimeout(timer);
    if (this.overdue.size > 0) {
      this.logger.warn(
        { members: [...this.overdue.values()].flat() },
        'closing while recomputes that outlived their timeout still run: if they write late, mark these parents again',
      );
    }
  }
}
