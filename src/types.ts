import type { EntityTarget, ObjectLiteral } from 'typeorm';
import type { DrainResult, FailedEvent, RecomputedEvent } from './drain/types';
import type { Housework } from './ops/housekeeper';
import type { VerifyResult } from './verify/verifier';

/** Events a Coalescer emits. */
export interface CoalescerEvents {
  recomputed: [RecomputedEvent];
  failed: [FailedEvent];
  /** After each `drain()` that completed (a runner's ticks included), with what it did. */
  drained: [DrainResult];
  /** Before a drain, what the housekeeping did (outbox relayed and pruned, rebuild after a Redis data loss). */
  housework: [Housework];
  /** After each `verify()`, with what it found. */
  verified: [VerifyResult];
}

/** Child entities, by target or name. */
export type Children = readonly (EntityTarget<ObjectLiteral> | string)[];
