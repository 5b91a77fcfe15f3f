import type { CoalesceLogger as Logger } from '../log';
import { errorMessage } from '../errors';

/** How often the relay polls the outbox for rows the triggers wrote. */
export interface RelayPollOptions {
  /**
   * Delay after a poll that found rows, in ms: while rows keep coming, the outbox is polled (and
   * relayed) this often.
   * @defaultValue 10
   */
  minMs: number;
  /**
   * Longest delay between two polls of an outbox that stays empty, in ms: the delay doubles from
   * `minMs` up to it. The longest wait of the first change after a quiet spell.
   * @defaultValue 200
   */
  maxMs: number;
}

/** Default polling: every 10 ms while rows come, backing off to 200 ms when idle. */
export const RELAY_POLL: Readonly<RelayPollOptions> = Object.freeze({ minMs: 10, maxMs: 200 });

/** Longest delay after a failed poll, or a relay that could not send the oldest row. */
const FAILURE_MAX_MS = 5_000;

/**
 * What one poll found: no unsent row (`idle`), rows it relayed (`relayed`), the same oldest
 * unsent row as before its last relay (`stuck`: Redis lost its epoch, or another process holds
 * the row), or a failure of the database or Redis (`failed`).
 */
export type PollOutcome = 'idle' | 'relayed' | 'stuck' | 'failed';

/**
 * The delay before the next poll, after one that waited `delay` ms and found `outcome`: `minMs`
 * after a relay (rows keep coming), doubling up to `maxMs` while idle, and up to 5 s after a
 * failure or a relay that could not send the oldest row (the drain's relay covers those).
 */
export function nextPollDelay(delay: number, outcome: PollOutcome, poll: Readonly<RelayPollOptions>): number {
  const doubled = Math.max(poll.minMs, delay) * 2;
  switch (outcome) {
    case 'relayed':
      return poll.minMs;
    case 'idle':
      return Math.min(poll.maxMs, doubled);
    case 'stuck':
    case 'failed':
      return Math.min(Math.max(FAILURE_MAX_MS, poll.maxMs), doubled);
  }
}

/** What the poller needs. */
export interface OutboxPollerOptions {
  /** The id of the oldest committed row not sent to Redis yet, or undefined when there is none. */
  readonly oldest: () => Promise<string | undefined>;
  /** Relays the outbox; throws when the database or Redis fails. */
  readonly relay: () => Promise<unknown>;
  readonly logger: Logger;
  readonly poll: Readonly<RelayPollOptions>;
}

/**
 * Relays the outbox shortly after the triggers wrote to it, without a NOTIFY in the writing
 * transactions (which would make them commit one at a time): a cheap index probe for the oldest
 * unsent row, then a relay when there is one, the next probe after {@link nextPollDelay}. One
 * poll at a time; `wake()` polls at once (a notification of an older trigger). Never throws
 * nor rejects.
 */
export class OutboxPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private delay: number;
  private failures = 0;
  /** The oldest unsent row when the last relay started. */
  private relayedFrom: string | undefined;
  private started = false;
  private closed = false;

  constructor(private readonly options: OutboxPollerOptions) {
    this.delay = options.poll.minMs;
  }

  /** Starts polling, with a poll at once. Idempotent. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.schedule(0);
  }

  /** Polls now, or right after the poll in flight, and polls often again. */
  wake(): void {
    if (!this.started || this.closed) return;
    this.delay = this.options.poll.minMs;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /** Stops polling and waits for the poll in flight. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running) await this.running;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), ms);
    // A host that never calls close() can still exit.
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    this.running = this.step();
    await this.running;
    this.running = undefined;
    if (this.closed) return;
    if (this.again) {
      this.again = false;
      this.delay = this.options.poll.minMs;
      this.schedule(0);
      return;
    }
    this.schedule(this.delay);
  }

  /** One probe, and a relay when it found a row; sets the delay to the next probe. */
  private async step(): Promise<void> {
    let outcome: PollOutcome;
    try {
      const oldest = await this.options.oldest();
      if (oldest === undefined) {
        outcome = 'idle';
      } else {
        outcome = oldest === this.relayedFrom ? 'stuck' : 'relayed';
        this.relayedFrom = oldest;
        await this.options.relay();
      }
      if (this.failures > 0) {
        this.options.logger.info({ failures: this.failures }, 'outbox relay poll works again');
        this.failures = 0;
      }
    } catch (error) {
      outcome = 'failed';
      this.failures += 1;
      // One warning per outage, not one per poll.
      const { logger } = this.options;
      (this.failures === 1 ? logger.warn.bind(logger) : logger.debug.bind(logger))(
        { err: errorMessage(error), attempt: this.failures },
        'outbox relay poll failed: retrying with backoff (the rows wait in the outbox; each drain relays them too)',
      );
    }
    this.delay = nextPollDelay(this.delay, outcome, this.options.poll);
  }
}
