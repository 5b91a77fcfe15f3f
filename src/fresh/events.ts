import type { CoalesceLogger as Logger } from '../log';
import type { Keys } from '../redis/keys';
import type { RedisClient } from '../redis/scripts';
import { errorMessage } from '../errors';
import type { DrainResult, FailedEvent, RecomputedEvent } from '../drain/types';

/** An event of the namespace, from whichever process it happened in. */
export type LiveEvent =
  | ({ readonly type: 'recomputed'; readonly worker: string } & RecomputedEvent)
  | ({ readonly type: 'failed'; readonly worker: string } & Omit<FailedEvent, 'error'> & { readonly error: string })
  | { readonly type: 'drained'; readonly worker: string; readonly result: DrainResult };

/** A live event as this process publishes it (the hub adds its worker). */
export type OutgoingEvent = LiveEvent extends infer E ? (E extends LiveEvent ? Omit<E, 'worker'> : never) : never;

/** A subscription to the namespace's live events; `close()` ends it. */
export interface Subscription {
  close(): Promise<void>;
}

/** What the ack script publishes: the members it acknowledged and the generations they covered. */
interface AckedMessage {
  readonly type: 'acked';
  readonly members: string[];
  readonly generations: string[];
}

type Wire = AckedMessage | { type: 'batch'; events: LiveEvent[] };

/** How often a listening process says so, and how long that lasts. */
const HEARTBEAT_MS = 3_000;
const LISTENING_TTL_MS = 10_000;
/** Recomputed and failed events are published in batches at most this often. */
const FLUSH_MS = 100;
/** How long a publisher trusts what it last read of whether anyone listens. */
const LISTENERS_CHECK_MS = 250;
/** Most events held for one batch; more are dropped (and counted) rather than held in memory. */
const MAX_BATCH = 5_000;

/** What the event hub needs. */
export interface EventHubOptions {
  /** The main connection; subscribing duplicates it. */
  readonly client: RedisClient;
  readonly keys: Keys;
  /** The namespace's event channel. */
  readonly channel: string;
  /** This process's worker name, carried by its events. */
  readonly worker: string;
  readonly logger: Logger;
}

/**
 * The namespace's event channel (Redis pub/sub): recomputes, failures and drains published by
 * every process, and the acknowledgements `fresh()` waits for. Events are published only while
 * some process listens (a key with an expiry says so), in batches, so a drain pays nothing for
 * them when nobody listens. Delivery is at most once, as pub/sub is: `fresh()` also polls.
 */
export class EventHub {
  private sub: RedisClient | undefined;
  private subscribing: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(event: LiveEvent) => void>();
  private readonly ackWatchers = new Set<(members: readonly string[], generations: readonly string[]) => void>();
  private outgoing: LiveEvent[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private someoneListens = false;
  private checkedAt = -Infinity;
  /** Events not published because a batch was full. */
  dropped = 0;

  private readonly client: RedisClient;
  private readonly keys: Keys;
  readonly channel: string;
  private readonly worker: string;
  private readonly logger: Logger;

  constructor(options: EventHubOptions) {
    ({ client: this.client, keys: this.keys, channel: this.channel, worker: this.worker, logger: this.logger } = options);
  }

  /** Calls `listener` with every live event of the namespace until the subscription is closed. */
  async subscribe(listener: (event: LiveEvent) => void): Promise<Subscription> {
    this.listeners.add(listener);
    await this.listen();
    return { close: () => this.unlisten(() => this.listeners.delete(listener)) };
  }

  /** Calls `watcher` with each batch of acknowledged members until the returned function is called. */
  async watchAcks(watcher: (members: readonly string[], generations: readonly string[]) => void): Promise<() => Promise<void>> {
    this.ackWatchers.add(watcher);
    await this.listen();
    return () => this.unlisten(() => this.ackWatchers.delete(watcher));
  }

  /**
   * Queues an event for publication. While nobody listens (checked at most every 250 ms, in
   * the background) it costs nothing more than that check.
   */
  publish(event: OutgoingEvent | (() => OutgoingEvent)): void {
    // Unsure (the last check is old): keep it, the flush decides once the check is back.
    const unsure = performance.now() - this.checkedAt > LISTENERS_CHECK_MS;
    if (unsure) this.checkListeners();
    if (!unsure && !this.someoneListens && !this.checking) return;
    if (this.outgoing.length >= MAX_BATCH) {
      this.dropped += 1;
      return;
    }
    // A function makes the event only when it is kept (no object per recompute otherwise).
    const made = typeof event === 'function' ? event() : event;
    this.outgoing.push({ ...made, worker: this.worker } as LiveEvent);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  /** Publishes what is queued; never rejects. */
  async flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const events = this.outgoing;
    this.outgoing = [];
    if (events.length === 0) return;
    await this.listenersChecked;
    if (!this.someoneListens) return;
    try {
      await this.client.publish(this.channel, JSON.stringify({ type: 'batch', events }));
    } catch (error) {
      this.logger.debug({ err: errorMessage(error), events: events.length }, 'could not publish events');
    }
  }

  private checking = false;
  private listenersChecked: Promise<void> = Promise.resolve();
  private checkListeners(): void {
    if (this.checking) return;
    this.checking = true;
    this.checkedAt = performance.now();
    this.listenersChecked = this.client.exists(this.keys.listening).then(
      (n) => {
        this.someoneListens = n === 1;
        this.checking = false;
      },
      () => {
        // Redis is away: events wait for the next check.
        this.checking = false;
      },
    );
  }

  private listen(): Promise<void> {
    this.subscribing ??= (async () => {
      const sub = this.client.duplicate() as RedisClient;
      sub.on('error', (err: Error) => this.logger.debug({ err: err.message }, 'event channel connection error'));
      sub.on('message', (_channel: string, text: string) => this.receive(text));
      this.sub = sub;
      await sub.subscribe(this.channel);
      await this.beat();
      // This process listens now: its own events need not wait for the next check to say so.
      this.someoneListens = true;
      this.checkedAt = performance.now();
      this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_MS);
      this.heartbeat.unref();
    })().catch((error: unknown) => {
      this.subscribing = undefined;
      const sub = this.sub;
      this.sub = undefined;
      sub?.disconnect();
      throw error;
    });
    return this.subscribing;
  }

  private async beat(): Promise<void> {
    await this.client.set(this.keys.listening, '1', 'PX', LISTENING_TTL_MS).catch((error: unknown) => {
      this.logger.debug({ err: errorMessage(error) }, 'could not say the event channel is listened to');
    });
  }

  private async unlisten(remove: () => void): Promise<void> {
    remove();
    if (this.listeners.size > 0 || this.ackWatchers.size > 0) return;
    await this.stop();
  }

  /** Closes the subscription connection (close()). */
  async stop(): Promise<void> {
    this.listeners.clear();
    this.ackWatchers.clear();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const sub = this.sub;
    this.sub = undefined;
    this.subscribing = undefined;
    if (sub) {
      await sub.quit().catch(() => sub.disconnect());
    }
    await this.flush();
  }

  private receive(text: string): void {
    let wire: Wire;
    try {
      wire = JSON.parse(text) as Wire;
    } catch {
      return;
    }
    if (wire.type === 'acked') {
      for (const watcher of this.ackWatchers) watcher(wire.members, wire.generations.map(String));
      return;
    }
    if (wire.type !== 'batch' || !Array.isArray(wire.events)) return;
    for (const event of wire.events) {
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (error) {
          this.logger.error({ err: errorMessage(error) }, 'a live event listener threw; ignored');
        }
      }
    }
  }
}
