import type { CoalesceLogger as Logger } from '../log';
import type { FenceFloors, MarkEntry } from '../redis/records';
import type { Marked, Marks } from '../redis/marks';
import { MAX_BATCH } from '../util/chunks';
import { errorMessage } from '../errors';
import { within } from '../util/within';
import { OutageLog } from './outage';

/** Marks that could not be sent to Redis, handed to whatever keeps them (the outbox) or logged. */
export type UndeliveredHandler = (entries: readonly MarkEntry[], error: unknown) => Promise<void>;

/** Counters of what the marker sent. */
export interface MarkerStats {
  /** Parent marks sent (one per distinct parent per round trip). */
  marks: number;
  /** Round trips to Redis made by the marker (the save path's sends of one turn share one). */
  roundTrips: number;
  /** Marks that could not be sent. */
  undelivered: number;
}

/** What a send came to. */
export interface Sent {
  /** Whether Redis took the marks within the mark timeout. */
  readonly delivered: boolean;
  /** The namespace's epoch as the marks found it ('' when unknown or not delivered). */
  readonly epoch: string;
  /** The fence value the marks were given (0 when not delivered). */
  readonly generation: number;
}

/** Where the marker reports the fence values Redis gives its marks (the epoch guard). */
export interface FenceWatch {
  /** The floors to hold a reply to, read before the command is sent. */
  floors(): FenceFloors;
  /** `before`: the writer's generation Redis had before the call (undefined when none). */
  observe(value: number, before: number | undefined, atSend: FenceFloors, epoch: string): void;
}

/** Adds `entry` to `batch`, summing the increments of the same member. */
export function addMark(batch: Map<string, MarkEntry>, entry: MarkEntry): void {
  const prev = batch.get(entry.member);
  batch.set(entry.member, prev ? { ...prev, increment: prev.increment + entry.increment } : entry);
}

/**
 * How long the save path's sends wait for others to join them when no save waits for them
 * (awaitMarks off): socket writes are what a mark costs the host's process most, and a commit's
 * marks reaching Redis 2 ms later changes nothing a reader can see.
 */
export const JOIN_MS = 2;

/**
 * Joins the save path's sends that start within `delayMs` (0: in the same turn of the event
 * loop) into one script call: concurrent commits each send their transaction's marks, one call
 * carries them all, the increments of a parent summed. Every caller gets the joint reply, or
 * its error.
 */
export class JointSends {
  private waiting: { entries: readonly MarkEntry[]; resolve: (m: Marked) => void; reject: (e: unknown) => void }[] = [];

  constructor(
    private readonly marks: Pick<Marks, 'mark'>,
    private readonly clock: () => number,
    /** Told of each script call made. */
    private readonly onCall: () => void,
    private readonly delayMs: number,
  ) {}

  mark(entries: readonly MarkEntry[]): Promise<Marked> {
    return new Promise<Marked>((resolve, reject) => {
      this.waiting.push({ entries, resolve, reject });
      if (this.waiting.length > 1) return;
      if (this.delayMs > 0) setTimeout(() => this.flush(), this.delayMs);
      else setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const waiting = this.waiting;
    this.waiting = [];
    let entries: readonly MarkEntry[];
    if (waiting.length === 1) entries = (waiting[0] as (typeof waiting)[number]).entries;
    else {
      const joint = new Map<string, MarkEntry>();
      for (const w of waiting) for (const e of w.entries) addMark(joint, e);
      entries = [...joint.values()];
    }
    this.onCall();
    this.marks.mark(entries, this.clock()).then(
      (marked) => {
        for (const w of waiting) w.resolve(marked);
      },
      (error: unknown) => {
        for (const w of waiting) w.reject(error);
      },
    );
  }
}

/** Adds `p` to `set` until it settles. */
function track(set: Set<Promise<unknown>>, p: Promise<unknown>): void {
  set.add(p);
  void p.finally(() => set.delete(p));
}

/** What a marker needs. */
export interface MarkerOptions {
  /** The save path's marks: a connection that fails fast. */
  readonly marks: Pick<Marks, 'mark'>;
  /**
   * Explicit `mark()` calls go through this one: the main connection, with no per-command
   * timeout, so 100,000 parents pipelined in one call are not cut short while they queue.
   */
  readonly bulk: Pick<Marks, 'mark'>;
  readonly logger: Logger;
  /** Server time in ms, carried by the marks. */
  readonly clock: () => number;
  /** What keeps the marks Redis did not take (the outbox); rejects when it cannot. */
  readonly keep: UndeliveredHandler;
  /** Longest a send may take, connecting included, before its marks count as undelivered. */
  readonly timeoutMs: number;
  /** When false, the save path does not wait for Redis: sends run in the background. */
  readonly awaitMarks: boolean;
  /** False while the connection is known to be down (lost and reconnecting): fail at once. */
  readonly reachable: () => boolean;
  /** Settles once the clock has been set against Redis (or failed to): marks carry its time. */
  readonly clockReady: () => Promise<void>;
  /** Told the fence value of every delivered send. */
  readonly fence?: FenceWatch;
}

/**
 * Sends marks to Redis in one round trip per batch. Never throws: the host's save already
 * committed, so a failure is handed to the undelivered handler instead. One deadline bounds
 * a send however the client retries (a standalone Redis or a Cluster with a paused shard).
 */
export class Marker {
  readonly stats: MarkerStats = { marks: 0, roundTrips: 0, undelivered: 0 };
  /** Says what Redis did not take once per outage. */
  readonly outage: OutageLog;
  /** Background sends of the save path. */
  private readonly inflight = new Set<Promise<unknown>>();
  /** Marks Redis did not take, being written to the outbox. */
  private readonly keeping = new Set<Promise<unknown>>();
  private readonly logger: Logger;
  private readonly joint: JointSends;

  constructor(private readonly options: MarkerOptions) {
    this.logger = options.logger;
    this.outage = new OutageLog(options.logger);
    this.joint = new JointSends(
      options.marks,
      options.clock,
      () => (this.stats.roundTrips += 1),
      options.awaitMarks ? 0 : JOIN_MS,
    );
  }

  /**
   * Runs a send for the save path: awaited when marks are awaited, else started at once and
   * tracked, so the host's save returns without a Redis round trip. Never rejects.
   */
  dispatch(send: () => Promise<unknown>): Promise<void> {
    const p = send().catch((error: unknown) => this.logger.error({ err: errorMessage(error) }, 'sending marks failed'));
    if (this.options.awaitMarks) return p.then(() => undefined);
    track(this.inflight, p);
    return Promise.resolve();
  }

  /**
   * Resolves when every send started before the call has ended: delivered, or kept by the
   * undelivered handler (the outbox). Sends started later are not waited for: a save path that
   * never pauses must not hold a drain (or a runner's tick) until it does. `idle`: until no send
   * is in flight at all (closing, once nothing sends any more).
   */
  async settled(until: 'started' | 'idle' = 'started'): Promise<void> {
    do {
      await Promise.all([...this.inflight]);
      // A failed send hands its marks to the outbox before it ends: those writes are here now.
      await Promise.all([...this.keeping]);
    } while (until === 'idle' && this.inflight.size + this.keeping.size > 0);
  }

  /**
   * Sends marks (`bulk`: through the main connection, for explicit marks of many parents).
   * Marks Redis did not take go to the undelivered handler (unless `keep` is false:
   * they are kept elsewhere already) in the background, tracked by {@link settled}: the caller
   * may hold a pooled connection (a save's commit hook does) that keeping them needs, and
   * waiting here would deadlock a full pool.
   */
  async send(
    entries: readonly MarkEntry[],
    { keep = true, bulk = false }: { keep?: boolean; bulk?: boolean } = {},
  ): Promise<Sent> {
    if (entries.length === 0) return { delivered: true, epoch: '', generation: 0 };
    try {
      if (!this.options.reachable()) throw new Error('the Redis connection is down (reconnecting)');
      // markTimeoutMs per script call of the send: a save's marks are one call; an explicit
      // mark() of 100,000 parents is 200, pipelined, and is not cut short for its size.
      const timeoutMs = this.options.timeoutMs * Math.ceil(entries.length / MAX_BATCH);
      const floors = this.options.fence?.floors();
      const attempt = (async () => {
        await this.options.clockReady();
        if (!bulk) return this.joint.mark(entries);
        this.stats.roundTrips += 1;
        return this.options.bulk.mark(entries, this.options.clock());
      })();
      // A send that lands after the deadline still counts in Redis: its marks are then kept
      // twice, which costs one more recompute, never a lost one.
      attempt.catch(() => undefined);
      const { epoch, generation, before } = await within(
        attempt,
        timeoutMs,
        () => `Redis did not take the marks within ${timeoutMs} ms (markTimeoutMs per ${MAX_BATCH} parents)`,
      );
      this.stats.marks += entries.length;
      this.outage.delivered();
      if (floors) this.options.fence?.observe(generation, before, floors, epoch);
      return { delivered: true, epoch, generation };
    } catch (error) {
      if (keep) return this.keepOnly(entries, error);
      this.stats.undelivered += entries.length;
      return { delivered: false, epoch: '', generation: 0 };
    }
  }

  /** Keeps marks for later without sending them (Redis is away, or did not take them): the outbox takes them. */
  keepOnly(entries: readonly MarkEntry[], error: unknown): Sent {
    this.stats.undelivered += entries.length;
    track(this.keeping, this.keep(entries, error));
    return { delivered: false, epoch: '', generation: 0 };
  }

  private async keep(entries: readonly MarkEntry[], error: unknown): Promise<void> {
    try {
      await this.options.keep(entries, error);
      this.outage.undelivered(entries.length, error);
    } catch (handlerError) {
      this.outage.undelivered(entries.length, `${errorMessage(error)}; kept nowhere: ${errorMessage(handlerError)}`, {
        lost: true,
        members: entries.map((e) => e.member),
      });
    }
  }
}
