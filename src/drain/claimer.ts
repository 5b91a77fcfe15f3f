import type { Store, Candidate, Won } from '../redis/store';
import type { ServerClock } from '../redis/clock';
import type { Classified } from '../members';
import type { ParentType } from '../registry';
import type { Claim } from './leases';

/** Claimed parents per window whose first-mark time is read, for the wait figures. */
const WAIT_SAMPLE = 16;

/** A claimed member with what it turned out to be. */
export interface Claimed {
  readonly claim: Claim;
  readonly what: Exclude<Classified<ParentType>, { kind: 'foreign' }>;
}

/** One window's outcome: 'empty' when nothing claimable is pending. */
export type Window = Claimed[] | 'empty';

/**
 * Reads windows at the top of pending (overdue parents first) and claims them with the checked
 * ZREM. Members are read and claimed as raw bytes. Members of a type only other processes of the
 * namespace register are left to them: never claimed here, so never dead-lettered by a process
 * that merely does not know them.
 */
export class Claimer {
  /** Rank in pending to read from: 0 until another worker is met at the top. */
  private offset = 0;
  /** Reading down from the top past members only other processes recompute. */
  private skippingForeign = false;
  lostRaces = 0;

  constructor(
    private readonly store: Store,
    private readonly clock: ServerClock,
    private readonly leaseMs: number,
    private readonly classify: (key: Buffer) => Classified<ParentType>,
    private readonly spread: boolean,
  ) {}

  /** Reads a window of up to `size` and claims what this process can recompute. */
  async next(size: number): Promise<Window> {
    const now = this.clock.now();
    const { overdue, top } = await this.store.readWindow(now, size, this.offset);
    const candidates: Candidate[] = [];
    const kinds: Claimed['what'][] = [];
    const seen = new Set<string>();
    let foreign = 0;
    const consider = (key: Buffer, score: string): void => {
      const what = this.classify(key);
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
    const validUntil = performance.now() + this.leaseMs;
    const { token, won } = await this.store.claim(candidates, this.clock.now() + this.leaseMs, WAIT_SAMPLE);
    this.lostRaces += candidates.length - won.length;
    if (won.length < candidates.length && this.spread) {
      // Another worker reads the same part of the set: move one to three windows further down
      // (past the end, the next read starts from the top again), so workers spread out.
      this.offset += size * (1 + Math.floor(Math.random() * 3));
    }
    return claimedOf(candidates, kinds, token, won, validUntil);
  }
}

/** The claims a claim call won, each with what its member is; their leases hold until `validUntil` (performance.now()). */
export function claimedOf(
  candidates: readonly Candidate[],
  kinds: readonly Claimed['what'][],
  token: string,
  won: readonly Won[],
  validUntil: number,
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
        validUntil,
        lost: undefined,
        onLost: undefined,
      },
    };
  });
}
