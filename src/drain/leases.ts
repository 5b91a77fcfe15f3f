import type { CoalesceLogger as Logger } from '../log';
import type { Store } from '../redis/store';
import type { ServerClock } from '../redis/clock';
import { LeaseLostError, errorMessage } from '../errors';

/** A parent this worker claimed and holds until its ack, failure or release. */
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
  /** performance.now() until which the lease surely holds; each renewal moves it on. */
  validUntil: number;
  /** Why the lease was lost, once it was. */
  lost: LeaseLostError | undefined;
  /** Called once when the lease is lost while the recompute runs: aborts its signal. */
  onLost: ((reason: LeaseLostError) => void) | undefined;
  /**
   * Its ack, failure or release is on its way: a renewal crossing it finds the claim ended, and
   * that is no lost lease.
   */
  ending?: boolean;
}

/**
 * Keeps the leases of every claim this worker holds alive: one batched renewal script per
 * interval (a third of the lease) for all of them, queued and running alike. A claim the
 * renewal finds passed to another worker, or that could not be renewed before a quarter of its
 * lease was left (Redis unreachable), is lost: its recompute's signal is aborted before another
 * worker can take the parent.
 */
export class LeaseKeeper {
  private readonly held = new Set<Claim>();
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private lastRenewal = 0;
  private failing = false;
  private readonly tickMs: number;
  private readonly renewEveryMs: number;
  /** A lease with less than this left (ms) is given up before it can expire in Redis. */
  readonly safetyMs: number;

  constructor(
    private readonly store: Store,
    private readonly clock: ServerClock,
    private readonly leaseMs: number,
    private readonly logger: Logger,
    private readonly onLost: (claims: readonly Claim[]) => void = () => undefined,
  ) {
    this.renewEveryMs = Math.max(20, Math.floor(leaseMs / 3));
    this.safetyMs = Math.floor(leaseMs / 4);
    this.tickMs = Math.max(10, Math.min(1000, Math.floor(leaseMs / 10)));
  }

  /** Claims held now. */
  get size(): number {
    return this.held.size;
  }

  /** Starts keeping `claims` alive. */
  hold(claims: readonly Claim[]): void {
    for (const c of claims) this.held.add(c);
    if (!this.timer && this.held.size > 0) {
      this.lastRenewal = performance.now();
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  /** Stops keeping `claim` alive (acknowledged, failed, released or given up). */
  drop(claim: Claim): void {
    this.held.delete(claim);
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
    return claim.lost === undefined && claim.validUntil - performance.now() > marginMs;
  }

  /** Stops every renewal (close). */
  stop(): void {
    this.held.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = performance.now();
    const expiring: Claim[] = [];
    for (const c of this.held) if (c.validUntil - now <= this.safetyMs) expiring.push(c);
    if (expiring.length > 0) {
      this.lose(expiring, 'it could not be renewed in time (is Redis reachable?)');
    }
    if (!this.renewing && now - this.lastRenewal >= this.renewEveryMs && this.held.size > 0) void this.renew();
  }

  private lose(claims: readonly Claim[], reason: string): void {
    for (const c of claims) {
      this.held.delete(c);
      if (c.lost) continue;
      c.lost = new LeaseLostError(c.member, reason);
      c.onLost?.(c.lost);
    }
    this.idle();
    this.logger.warn(
      { members: claims.slice(0, 20).map((c) => c.member), count: claims.length, reason },
      'leases lost: their recomputes are aborted, another worker recomputes the parents',
    );
    this.onLost(claims);
  }

  /** One renewal of every held claim; never rejects. */
  private async renew(): Promise<void> {
    this.renewing = true;
    const claims = [...this.held];
    const started = performance.now();
    this.lastRenewal = started;
    try {
      const lost = await this.store.extend(
        claims.map((c) => ({ key: c.key, token: c.token })),
        this.clock.now() + this.leaseMs,
      );
      const gone = new Set(lost);
      const passed: Claim[] = [];
      claims.forEach((c, i) => {
        if (!gone.has(i)) c.validUntil = started + this.leaseMs;
        else if (c.ending) this.held.delete(c);
        else passed.push(c);
      });
      if (passed.length > 0) this.lose(passed, 'it passed to another worker');
      if (this.failing) this.logger.info({ held: claims.length }, 'lease renewals work again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) {
        this.logger.warn({ err: errorMessage(error), held: claims.length }, 'could not renew leases; retrying');
      }
      this.failing = true;
    } finally {
      this.renewing = false;
    }
  }
}
