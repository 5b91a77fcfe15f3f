import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { Claims } from '../redis/claims';
import type { Marks } from '../redis/marks';
import type { Outcomes } from '../redis/outcomes';
import type { Epochs } from '../redis/epochs';
import type { Reads } from '../redis/reads';
import type { ServerClock } from '../redis/clock';
import type { ParentId, ParentType } from '../registry/model';
import type { Registry } from '../registry/registry';
import type { RetryOptions } from './backoff';
import type { AckBuffer } from './acks';
import type { Invoker } from './invoke';
import type { LeaseKeeper } from './leases';
import type { DrainResult, FailedEvent, RecomputedEvent } from './types';

/** Resolved settings a drain needs. */
export interface DrainSettings {
  readonly leaseMs: number;
  readonly recomputeTimeoutMs: number;
  readonly retry: Readonly<RetryOptions>;
}

/** What the drain tells the rest of the coalescer, and asks of it. */
export interface DrainHooks {
  recomputed(event: RecomputedEvent): void;
  failed(event: FailedEvent): void;
  /**
   * Runs after recomputes succeed and before they are acknowledged (parent chains mark the
   * next parents here: a crash in between recomputes these again and marks again, never
   * loses the marks), and resolves with the members it marked. A rejection counts as a failed
   * recompute, retried. Returns nothing when there is nothing to do (no awaiting on the common
   * path).
   */
  beforeAck?(parent: ParentType, ids: () => ParentId[]): Promise<readonly string[]> | undefined;
  /**
   * Whether recomputes must run in the recompute scope, where capture tells their writes of
   * derived columns from a host's. Only when some parent declares derived columns: the scope
   * (AsyncLocalStorage) slows every promise of the process once used.
   */
  scoped?(): boolean;
}

/** Every part of the drain shares these: the Redis slices it uses and its own helpers. */
export interface DrainParts {
  readonly claims: Claims;
  readonly outcomes: Outcomes;
  readonly marks: Pick<Marks, 'mark'>;
  readonly epochs: Pick<Epochs, 'policyTypes'>;
  readonly reads: Pick<Reads, 'counts'>;
  readonly registry: Registry;
  readonly dataSource: DataSource;
  readonly clock: ServerClock;
  readonly logger: Logger;
  readonly settings: DrainSettings;
  readonly hooks: DrainHooks;
  readonly keeper: LeaseKeeper;
  readonly invoker: Invoker;
}

/** What one drain (or one recomputeNow) carries through its tasks. */
export interface Round {
  readonly result: DrainResult;
  readonly acks: AckBuffer;
  /** Members its recomputes marked up their chains: recomputed by this drain, quiet period or not. */
  readonly chained: Set<string>;
}
