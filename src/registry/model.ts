import type { EntityManager, EntityMetadata } from 'typeorm';
import type { EntityTarget, ObjectLiteral } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { ColumnMetadata } from '../typeorm-types';
import type { AggregateSpec } from '../aggregates/spec';
import type { CompiledAggregates } from '../aggregates/compile';
import type { Priority } from '../redis/score';
import type { IdKind, ParentId } from './members';

// The types every part shares: what is registered, and what a recompute is given. A leaf: it
// imports types only, from leaves.

export type { ParentId } from './members';
export type { Priority } from '../redis/score';

/** What a recompute is given besides the parent id(s). */
export interface RecomputeContext {
  /** The DataSource's entity manager; open a transaction with it if the recompute needs one. */
  readonly manager: EntityManager;
  /**
   * Aborted when the recompute must stop: it ran past `recomputeTimeoutMs`
   * (`RecomputeTimeoutError`), its worker lost the lease (another worker may recompute
   * the parent now: `LeaseLostError`), or its worker is stopping (`StoppingError`).
   * Pass it on to long work (queries, HTTP calls) and stop when it fires.
   */
  readonly signal: AbortSignal;
  /**
   * The claim's fencing token: every later claim of the namespace has a larger one. A recompute
   * that must never let an older run's write land last can store it with the parent and write
   * only `WHERE fence < :fence`.
   */
  readonly fence: number;
  /** Failed attempts before this one (0 on the first try). */
  readonly attempt: number;
  /** Logger bound to the parent(s) being recomputed. */
  readonly logger: Logger;
}

/**
 * What a parent's derived fields should hold, for `verify()` of a parent without `aggregates`:
 * for each id, its fields (parent property names) and their expected values. Ids left out of the
 * map are not checked.
 */
export type ExpectedValues<Id extends ParentId = ParentId> = (
  ids: Id[],
  manager: EntityManager,
) => Promise<ReadonlyMap<ParentId, Readonly<Record<string, unknown>>>>;

/** How a parent type is recomputed. Give `aggregates`, `recompute`, `recomputeMany`, or several. */
export interface ParentOptions<Id extends ParentId = ParentId> {
  /**
   * Derived fields declared as aggregates over children (`{ total: sum(OrderLine, 'qty * unitPrice') }`),
   * compiled to one UPDATE per batch of parents. With `recompute`/`recomputeMany` as well, both
   * run in one transaction, aggregates first.
   */
  aggregates?: Record<string, AggregateSpec>;
  /** What `verify()` compares the stored fields with, for a parent without `aggregates`. */
  expected?: ExpectedValues<Id>;
  /** Rebuilds one parent from its children. */
  recompute?: (id: Id, ctx: RecomputeContext) => Promise<void>;
  /**
   * Rebuilds many parents at once (one SQL statement for a batch). When it throws, the batch
   * falls back to `recompute` one by one if given, so one bad parent does not fail the others.
   */
  recomputeMany?: (ids: Id[], ctx: RecomputeContext) => Promise<void>;
  /**
   * Most ids handed to one `recomputeMany` call.
   * @defaultValue 100
   */
  batchSize?: number;
  /**
   * Drain tier of this type.
   * @defaultValue 'normal'
   */
  priority?: Priority;
  /**
   * Quiet period: a parent of this type is not claimed until no mark has touched it for this
   * long, so a burst of edits gives one recompute after the burst. Never delays past `maxWaitMs`.
   * @defaultValue 0
   */
  settleMs?: number;
  /**
   * Longest a parent of this type waits from its first mark to its claim: past it, it is claimed
   * before any hotter or higher-priority parent. Overrides the Coalescer's `maxWaitMs`.
   * @defaultValue the Coalescer's `maxWaitMs` (none)
   */
  maxWaitMs?: number;
  /**
   * Shortest time between two recomputes of a parent of this type that keeps being marked: one
   * marked again while recomputed waits this long after that recompute (never past `maxWaitMs`).
   * Overrides the Coalescer's `minIntervalMs`; 0 turns it off for the type.
   * @defaultValue the Coalescer's `minIntervalMs` (500)
   */
  minIntervalMs?: number;
  /**
   * Properties of the parent's columns that its recompute writes (`['total', 'lineCount']`).
   * A host `save()` of the parent that writes one of them (typically a copy loaded before the
   * last recompute, written back whole) logs a warning once per column and marks the parent
   * again, so one more recompute heals the stale value. Writes made inside a recompute are not
   * host writes and are left alone. To stop the write-back, reload the entity before saving it,
   * or write only the columns you changed (`repository.update(id, { name })`, or a partial
   * `save({ id, name })`). Not `@Column({ update: false })`: TypeORM then leaves the column out
   * of every update, the recompute's own too (a recompute writing through `repository.update()`
   * throws UpdateValuesMissingError, or skips that column silently when it writes others).
   * @defaultValue none
   */
  derived?: readonly string[];
}

/** The options of `parent()` that capture reads. */
export type ParentCaptureOptions = Pick<ParentOptions, 'derived'>;

/**
 * How a child points at one of its parents: give `foreignKey` (one-to-many) or `via`
 * (many-to-many), not both.
 */
export interface ChildOptions {
  /** The parent entity (class, EntitySchema or name), registered with `parent()`. */
  parent: EntityTarget<ObjectLiteral>;
  /**
   * Property of the child that holds the parent's id: a column (`orderId`) or a many-to-one
   * relation with one join column (`order`). An explicit column lets the subscriber read old and
   * new parents from the event; a relation alone costs a batched SELECT when the event does not
   * carry it.
   */
  foreignKey?: string;
  /**
   * Name of a many-to-many relation between the parent and the child, declared on either entity
   * (`child(Post, { parent: User, via: 'favorites' })` with `User.favorites: Post[]`). Every link
   * added to or removed from its join table marks the parent of that link, and every change of a
   * child marks the parents it is linked to.
   */
  via?: string;
  /**
   * How the child's changes are captured. `'subscriber'`: the TypeORM subscriber sees the
   * writes made through TypeORM. `'triggers'`: database triggers (statement-level on
   * PostgreSQL, row triggers on MySQL/MariaDB), made by the migration
   * `coalescer.triggerMigration()` returns, see every write, raw SQL and other programs
   * included; the subscriber then stands aside for this child. Every `child()`
   * call of one child gives the same mode; `via` links are captured by the subscriber only.
   * @defaultValue 'subscriber'
   */
  capture?: CaptureMode;
}

/** An entity class (abstract ones included), as decorators and `entities()` take it. */
export type EntityClass = abstract new (...args: never[]) => object;

/** How a child's changes are captured: by the TypeORM subscriber, or by database triggers. */
export type CaptureMode = 'subscriber' | 'triggers';

/** Every capture mode, for checks and messages. */
export const CAPTURE_MODES: readonly CaptureMode[] = ['subscriber', 'triggers'];

/** A registered parent type. */
export interface ParentType {
  readonly name: string;
  readonly metadata: EntityMetadata;
  readonly primary: ColumnMetadata;
  /** How ids are spelled in members (one member per parent). */
  readonly idKind: IdKind;
  readonly base: number;
  readonly batchSize: number;
  readonly settleMs: number;
  readonly maxWaitMs: number | undefined;
  /** Ms a parent marked while recomputed waits after that recompute before the next. */
  readonly minIntervalMs: number;
  readonly recompute: ParentOptions['recompute'];
  readonly recomputeMany: ParentOptions['recomputeMany'];
  /** The declared aggregates, compiled. */
  readonly aggregates: CompiledAggregates | undefined;
  readonly expected: ExpectedValues | undefined;
  /** Columns its recomputes write (declared `derived`, and the aggregates' fields). */
  readonly derived: readonly ColumnMetadata[];
}
