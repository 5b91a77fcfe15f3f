import type { Candidate, Won } from '../redis/records';
import type { Claims } from '../redis/claims';
import type { ServerClock } from '../redis/clock';
import type { Classified } from '../registry/members';
import type { ParentType } from '../registry/model';
import type { Claim, LeaseKeeper } from './leases';

/** Claimed parents per window whose first-mark time is read, for the wait figures. */
const WAIT_SAMPLE = 16;

/** A claimed member with what it turned out to be. */
export interface Claimed {
  readonly claim: Claim;
  readonly what: Exclude<Classified<ParentType>, { kind: 'foreign' }>;
}

/** One window's outcome: 'empty' when nothing claimable is pending. */
export type Window = Claimed[] | 'empty';

/** What a claimer needs. */
export interface ClaimerOptions {
  readonly claims: Pick<Claims, 'readWindow' | 'claim'>;
  readonly clock: Pick<ServerClock, 'now'>;
  /** Takes the leases of what is claimed. */
  readonly keeper: Pick<LeaseKeeper, 'hold' | 'now'>;
  readonly leaseMs: number;
  readonly classify: (key: Buffer) => Classified<ParentType>;
  /** Move further down after losing races at the top (several workers, windows over 1). */
  readonly spread: boolean;
  /** @defaultValue Math.random */
  readonly random?: () => number;
}

/**
 * Reads windows at the top of pending (overdue parents first) and claims them with the checked
 * ZREM, taking their leases. Members are read and claimed as raw bytes. Members of a type only
 * other processes of the namespace register are left to them: never claimed here, so never
 * dead-lettered by a process that merely does not know them.
 */
export class Claimer {
  /** Rank in pending to read from: 0 until another worker is met at the top. */
  private offset = 0;
  /** Reading down from the top past members only other processes recompute. */
  private skippingForeign = false;
  lostRaces = 0;

  constructor(private readonly options: ClaimerOptions) {}

  /** Reads a window of up to `size` and claims what this process can recompute. */
  async next(size: number): Promise<Window> {
    const { claims, clock, keeper, leaseMs } = this.options;
    const { overdue, top } = await claims.readWindow(clock.now(), size, this.offset);
    const candidates: Candidate[] = [];
    const kinds: Claimed['what'][] = [];
    const seen = new Set<string>();
    let foreign = 0;
    const consider = (key: Buffer, score: string): void => {
      const what = this.options.classify(key);
      if (seen.has(what.member)) return;
      seen.add(what.member);
      if (what.kind === 'foreign') {
        foreign += 1;
        return;
      }
      // Every kind but a malformed member is valid UTF-8: its text is its exact bytes.
      candidates.push({ key: what.kind === 'malformed' ? key : what.member, score });
      kinds.push(what);
    };
    for (const key of overdue) consider(key, '');
    for (const c of top) consider(c.key, c.score);
    if (candidates.length === 0) {
      const fromTop = this.offset === 0 || this.skippingForeign;
      const atEnd = top.length < size - overdue.length;
      if (foreign > 0 && !atEnd) {
        // Only other processes' parents here: look further down.
        this.skippingForeign = fromTop;
        this.offset += size;
        return [];
      }
      this.skippingForeign = false;
      if (fromTop) {
        this.offset = 0;
        return 'empty';
      }
      // Past the end after spreading out: read from the top again.
      this.offset = 0;
      return [];
    }
    this.skippingForeign = false;
    // Measured before the call: the lease counts from no later than its deadline was set.
    const since = keeper.now();
    const { token, won } = await claims.claim(candidates, clock.now() + leaseMs, WAIT_SAMPLE);
    this.lostRaces += candidates.length - won.length;
    if (won.length < candidates.length && this.options.spread) {
      // Another worker reads the same part of the set: move one to three windows further down
      // (past the end, the next read starts from the top again), so workers spread out.
      this.offset += size * (1 + Math.floor((this.options.random ?? Math.random)() * 3));
    }
    const claimed = claimedOf(candidates, kinds, token, won);
    keeper.hold(
      claimed.map((c) => c.claim),
      since,
    );
    return claimed;
  }
}

/** The claims a claim call won, each with what its member is. */
export function claimedOf(
  candidates: readonly Candidate[],
  kinds: readonly Claimed['what'][],
  token: string,
  won: readonly Won[],
): Claimed[] {
  return won.map((w) => {
    const c = candidates[w.index] as Candidate;
    const what = kinds[w.index] as Claimed['what'];
    return {
      what,
      claim: {
        key: c.key,
        member: what.member,
        score: w.score,
        since: w.since,
        attempts: w.attempts,
        token,
      },
    };
  });
}
