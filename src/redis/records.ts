/** The records the scripts read and write, as TypeScript sees them. Nothing here knows TypeORM. */

/** One parent to mark: its member, how much heat to add, and the base of its score (priority). */
export interface MarkEntry {
  readonly member: string;
  readonly increment: number;
  readonly base: number;
}

/**
 * A member read for a claim: its exact bytes (as text when they are valid UTF-8, which encodes
 * back to the same bytes and is cheaper to send), and its score as read ('' when not read).
 */
export interface Candidate {
  readonly key: Buffer | string;
  readonly score: string;
}

/** A member won by a claim, by its index among the candidates. */
export interface Won {
  readonly index: number;
  /** Score at claim time (priority base + heat). */
  readonly score: number;
  /** Ms of the first mark not yet covered by a recompute, for the sampled claims. */
  readonly since: number | undefined;
  /** Failed attempts before this one. */
  readonly attempts: number;
}

/** A claim as the scripts know it: the member's exact bytes and the token that proves ownership. */
export interface ClaimRef {
  readonly key: Buffer | string;
  readonly token: string;
}

/** A recomputed parent to acknowledge. */
export interface AckEntry extends ClaimRef {
  readonly base: number;
  /** Ms from its first mark to the start of its recompute, recorded for lag figures. */
  readonly waitMs?: number | undefined;
}

/** A failed recompute: retry at `retryAt` (ms), or dead-letter when `retryAt` is undefined. */
export interface FailEntry extends ClaimRef {
  readonly retryAt: number | undefined;
  readonly error: string;
  readonly base: number;
}

/** How the scripts treat members of one parent type. */
export interface TypePolicy {
  /** Priority base of the score. */
  readonly base: number;
  /** Quiet period after the last mark before the parent may be claimed; 0 for none. */
  readonly settleMs: number;
  /** Longest wait from the first mark to the claim, if capped. */
  readonly maxWaitMs: number | undefined;
  /** Wait after a recompute during which the parent was marked again, before the next; 0 for none. */
  readonly minIntervalMs: number;
}

/** A dead-lettered parent as stored. */
export interface DeadEntry {
  readonly member: string;
  readonly error: string;
  readonly attempts: number;
  readonly score: number;
  /** Ms when it was dead-lettered. */
  readonly at: number;
}

/** Sizes of the sets of one namespace. */
export interface Counts {
  readonly pending: number;
  readonly inflight: number;
  readonly delayed: number;
  readonly dead: number;
  /** Leases whose deadline has passed and that no drain has given back yet. */
  readonly expired: number;
  /** Parents in their quiet period (settleMs), not yet claimable. */
  readonly settling: number;
  /** Parents past their maxWaitMs and not yet claimed. */
  readonly overdue: number;
  /** Ms of the oldest first mark among parents waiting for a recompute, if any. */
  readonly oldestSince: number | undefined;
}

/** Everything Redis holds about one parent (see {@link Reads.memberState}). */
export interface MemberState {
  readonly pendingScore: number | undefined;
  readonly settlingUntil: number | undefined;
  readonly settlingScore: number | undefined;
  /** Ms of the first mark not yet covered by a recompute. */
  readonly since: number | undefined;
  readonly leaseDeadline: number | undefined;
  readonly retryAt: number | undefined;
  readonly attempts: number;
  /** Heat of marks that arrived while it was held. */
  readonly markedDuring: number;
  readonly dead: DeadEntry | undefined;
}

/** The floors a mark's reply is held to, read before the command is sent (see EpochGuard.observe). */
export interface FenceFloors {
  /** The highest fence value Redis gave this process. */
  readonly all: number;
  /** The highest generation Redis gave this process's own marks. */
  readonly own: number;
}

/** What `checkEpoch` found; see checkEpoch-5.lua. */
export interface EpochCheck {
  readonly status: 'ok' | 'fresh' | 'lost' | 'behind' | 'changed';
  readonly epoch: string;
  /** The namespace's fence counter after the check (raised to the floor when it was below). */
  readonly fence: number;
  /** Whether the type policies are in Redis (they go with a data loss and must be written again). */
  readonly policies: boolean;
  /** Parent types whose rebuild after a data loss is unfinished. */
  readonly rebuilding: number;
}

/** Pending members counted per parent type by {@link Reads.pendingByType}. */
export interface PendingByType {
  /** Type name -> members of that type among those scanned. */
  readonly byType: Record<string, number>;
  /** Members scanned. */
  readonly scanned: number;
  /** Size of the pending set. */
  readonly total: number;
  /** True when every pending member was scanned, so `byType` is exact. */
  readonly exact: boolean;
}
