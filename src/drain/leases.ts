import type { CoalesceLogger as Logger } from '../log';
import type { Claims } from '../redis/claims';
import type { ServerClock } from '../redis/clock';
import { LeaseLostError, errorMessage } from '../errors';

/** A parent this worker claimed, as the claim call returned it. Never changed: the lease keeper keeps its lease's state. */
export interface Claim {
  /** The member's exact bytes in Redis (as text when they are valid UTF-8). */
  readonly key: Buffer | string;
  /** The member as text (for logs and events). */
  readonly member: string;
  /** Score at claim time (priority base + heat). */
  readonly score: number;
  /** Ms (server time) of the first mark not yet covered by a recompute, for the sampled claims. */
  readonly since: number | undefined;
  /** Failed attempts before this one. */
  readonly attempts: number;
  /** Fencing token: larger for every later claim window of the namespace. */
  readonly token: string;
}

/** What the keeper needs. */
export interface LeaseKeeperOptions {
  readonly claims: Pick<Claims, 'extend'>;
  /** Server time, for the deadlines written to Redis. */
  readonly clock: Pick<ServerClock, 'now'>;
  readonly leaseMs: number;
  readonly logger: Logger;
  /**
   * Monotonic time in ms, for how long a lease surely holds here.
   * @defaultValue performance.now
   */
  readonly monotonic?: () => number;
}

/**
 * Keeps the leases of every claim this worker holds alive: one batched renewal script per
 * interval (a third of the lease) for all of them, queued and running alike. A claim the
 * renewal finds passed to another worker, or that could not be renewed before a quarter of its
 * lease was left (Redis unreachable), is lost: its watcher (the recompute's signal) is told
 * before another worker can take the parent. The only owner of a lease's state.
 */
export class LeaseKeeper {
  /** Claims held now, and until when (monotonic) each surely holds. */
  private readonly held = new Map<Claim, number>();
  private readonly lostWith = new WeakMap<Claim, LeaseLostError>();
  private readonly watchers = new Map<Claim, (reason: LeaseLostError) => void>();
  /** Claims whose ack, failure or release is on its way: a renewal crossing it is no lost lease. */
  private readonly ending = new WeakSet<Claim>();
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private lastRenewal = 0;
  private failing = false;
  private readonly tickMs: number;
  private readonly renewEveryMs: number;
  private readonly leaseMs: number;
  /** Monotonic time in ms. */
  readonly now: () => number;
  /** A lease with less than this left (ms) is given up before it can expire in Redis. */
  readonly safetyMs: number;

  constructor(private readonly options: LeaseKeeperOptions) {
    this.leaseMs = options.leaseMs;
    this.now = options.monotonic ?? (() => performance.now());
    this.renewEveryMs = Math.max(20, Math.floor(this.leaseMs / 3));
    this.safetyMs = Math.floor(this.leaseMs / 4);
    this.tickMs = Math.max(10, Math.min(1000, Math.floor(this.leaseMs / 10)));
  }

  /** Claims held now. */
  get size(): number {
    return this.held.size;
  }

  /** Starts keeping `claims` alive; `since` is when (monotonic) their claim call was sent. */
  hold(claims: readonly Claim[], since: number): void {
    for (const c of claims) this.held.set(c, since + this.leaseMs);
    if (!this.timer && this.held.size > 0) {
      this.lastRenewal = this.now();
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  /** Calls `onLost` once if `claim`'s lease is lost while watched (a running recompute aborts). */
  watch(claim: Claim, onLost: (reason: LeaseLostError) => void): void {
    this.watchers.set(claim, onLost);
  }

  unwatch(claim: Claim): void {
    this.watchers.delete(claim);
  }

  /** Its ack, failure or release is on its way. */
  end(claim: Claim): void {
    this.ending.add(claim);
  }

  /** Why `claim`'s lease was lost, if it was. */
  lost(claim: Claim): LeaseLostError | undefined {
    return this.lostWith.get(claim);
  }

  /** Stops keeping `claim` alive (acknowledged, failed, released or given up). */
  drop(claim: Claim): void {
    this.held.delete(claim);
    this.watchers.delete(claim);
    this.idle();
  }

  private idle(): void {
    if (this.held.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Whether `claim` is still owned with at least `marginMs` of its lease left. */
  valid(claim: Claim, marginMs = this.safetyMs): boolean {
    const until = this.held.get(claim);
    return until !== undefined && !this.lostWith.has(claim) && until - this.now() > marginMs;
  }

  /** Stops every renewal (close). */
  stop(): void {
    this.held.clear();
    this.watchers.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One turn of the timer: gives up leases about to expire, and renews when it is time. */
  tick(): void {
    const now = this.now();
    const expiring: Claim[] = [];
    for (const [c, until] of this.held) if (until - now <= this.safetyMs) expiring.push(c);
    if (expiring.length > 0) this.lose(expiring, 'it could not be renewed in time (is Redis reachable?)');
    if (!this.renewing && now - this.lastRenewal >= this.renewEveryMs && this.held.size > 0) void this.renew();
  }

  private lose(claims: readonly Claim[], reason: string): void {
    for (const c of claims) {
      this.held.delete(c);
      if (this.lostWith.has(c)) continue;
      const error = new LeaseLostError(c.member, reason);
      this.lostWith.set(c, error);
      const onLost = this.watchers.get(c);
      this.watchers.delete(c);
      onLost?.(error);
    }
    this.idle();
    this.options.logger.warn(
      { members: claims.slice(0, 20).map((c) => c.member), count: claims.length, reason },
      'leases lost: their recomputes are aborted, another worker recomputes the parents',
    );
  }

  /** One renewal of every held claim; never rejects. */
  async renew(): Promise<void> {
    this.renewing = true;
    const claims = [...this.held.keys()];
    const started = this.now();
    this.lastRenewal = started;
    try {
      const gone = new Set(
        await this.options.claims.extend(
          claims.map((c) => ({ key: c.key, token: c.token })),
          this.options.clock.now() + this.leaseMs,
        ),
      );
      const passed: Claim[] = [];
      claims.forEach((c, i) => {
        if (!gone.has(i)) {
          if (this.held.has(c)) this.held.set(c, started + this.leaseMs);
        } else if (this.ending.has(c)) this.held.delete(c);
        else passed.push(c);
      });
      if (passed.length > 0) this.lose(passed, 'it passed to another worker');
      if (this.failing) this.options.logger.info({ held: claims.length }, 'lease renewals work again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) {
        this.options.logger.warn({ err: errorMessage(error), held: claims.length }, 'could not renew leases; retrying');
      }
      this.failing = true;
    } finally {
      this.renewing = false;
    }
  }
}
