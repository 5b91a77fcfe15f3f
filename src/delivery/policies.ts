import type { Epochs } from '../redis/epochs';
import type { Registry } from '../registry/registry';
import { errorMessage } from '../errors';
import { within } from '../util/within';

/** What the policies need. */
export interface PoliciesOptions {
  readonly epochs: Pick<Epochs, 'writePolicies'>;
  readonly registry: Registry;
  /** False while the connection marks go through is known to be down. */
  readonly reachable: () => boolean;
  /** Where Redis is, for messages. */
  readonly where: string;
  readonly markTimeoutMs: number;
}

/**
 * Each parent type's priority, settleMs and maxWaitMs, published to Redis where the scripts read
 * them (so marks sent by any process, or relayed later, follow them). Once per registration, and
 * again when Redis lost them; a failure is retried on the next call.
 */
export class Policies {
  private written: Promise<void> | undefined;
  /** `written` once it has resolved: marks need not wait for it any more. */
  private done: Promise<void> | undefined;

  constructor(private readonly options: PoliciesOptions) {}

  /** The registration changed: publish again before the next mark. */
  invalidate(): void {
    this.written = undefined;
  }

  /** Publishes the policies if they are not (`force`: again, Redis lost them). */
  publish(force = false): Promise<void> {
    if (force) this.written = undefined;
    if (this.written) return this.written;
    const types = this.options.registry.parentTypes();
    const written = this.options.epochs
      .writePolicies(new Map(types.map((t) => [t.name, { base: t.base, settleMs: t.settleMs, maxWaitMs: t.maxWaitMs }])))
      .then(
        () => {
          this.done = written;
        },
        (error: unknown) => {
          if (this.written === written) this.written = undefined;
          throw error;
        },
      );
    this.written = written;
    return written;
  }

  /**
   * Publishes the policies if need be, within markTimeoutMs; returns why Redis is away when it
   * could not (the marks then go straight to the outbox: an unreachable Redis costs one
   * markTimeoutMs, not two).
   */
  async away(): Promise<Error | undefined> {
    const { markTimeoutMs, where } = this.options;
    if (!this.options.reachable()) return new Error(`Redis at ${where} is down (reconnecting)`);
    const publishing = this.publish();
    if (publishing === this.done) return undefined;
    return within(
      publishing,
      markTimeoutMs,
      () => `Redis at ${where} did not answer within ${markTimeoutMs} ms (markTimeoutMs)`,
    ).then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error : new Error(errorMessage(error))),
    );
  }
}
