import type { Epochs } from '../redis/epochs';
import type { Registry } from '../registry/registry';
import { redisTrouble, type RedisSite } from '../errors';
import { within } from '../util/within';

/** What the policies need. */
export interface PoliciesOptions {
  readonly epochs: Pick<Epochs, 'writePolicies'>;
  readonly registry: Registry;
  /** False while the connection marks go through is known to be down. */
  readonly reachable: () => boolean;
  /** Where Redis is, and why it last could not be reached, for messages. */
  readonly redis: RedisSite;
  readonly markTimeoutMs: number;
}

/**
 * Each parent type's priority, settleMs, maxWaitMs and minIntervalMs, published to Redis where the scripts read
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
      .writePolicies(
        new Map(
          types.map((t) => [
            t.name,
            { base: t.base, settleMs: t.settleMs, maxWaitMs: t.maxWaitMs, minIntervalMs: t.minIntervalMs },
          ]),
        ),
      )
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
    const { markTimeoutMs, redis } = this.options;
    const { where } = redis;
    // The connection's last error says why, when it is down.
    const why = (): string => {
      const last = redis.lastError();
      return last ? `: ${redisTrouble(last, redis)}` : '';
    };
    if (!this.options.reachable()) return new Error(`Redis at ${where} is down (reconnecting${why()})`);
    const publishing = this.publish();
    if (publishing === this.done) return undefined;
    const described = publishing.catch((error: unknown) => {
      throw new Error(`Redis at ${where} did not take the policies: ${redisTrouble(error, redis)}`);
    });
    return within(
      described,
      markTimeoutMs,
      () => `Redis at ${where} did not answer within ${markTimeoutMs} ms (markTimeoutMs${why()})`,
    ).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
  }
}
