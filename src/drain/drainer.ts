import { hostname } from 'node:os';
import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { Claimed, FailEntry, Store, WindowEntry } from '../redis/store';
import type { ParentId, ParentType, RecomputeContext, Registry } from '../registry';
import { errorMessage, MalformedMemberError, RecomputeTimeoutError } from '../errors';
import { backoffMs, type RetryOptions } from './backoff';
import { AckBuffer } from './acks';
import { LazyContext } from './context';
import { Watchdog } from './watchdog';

/** Options of one drain. */
export interface DrainOptions {
  /**
   * Recomputes run at once in this process; one claimer feeds them all.
   * @defaultValue 1
   */
  concurrency?: number;
  /** Stop after claiming this many parents. */
  max?: number;
  /** Stop claiming after this many ms; work in flight finishes. */
  maxMs?: number;
  /**
   * Most parents read (ZREVRANGE) and claimed per round trip. The claimer sizes its windows
   * below this so that what it claims is done well within the lease; 1 claims one parent at a time.
   * @defaultValue 500
   */
  window?: number;
  /** Stop claiming when aborted; claimed parents not yet started are given back at once. */
  signal?: AbortSignal;
  /** Called after each window is claimed and after the drain, with the running totals. */
  onProgress?: (progress: DrainResult) => void;
}

/** What one drain did. */
export interface DrainResult {
  /** Parents claimed. */
  claimed: number;
  /** Parents recomputed successfully. */
  recomputed: number;
  /** Recomputes that failed (retried later or dead-lettered). */
  failed: number;
  /** Of the failed, parents moved to the dead set. */
  deadLettered: number;
  /** Members read at the top of the set that another worker claimed first. */
  lostRaces: number;
  /** Recomputed parents marked again while recomputed, now pending again. */
  rearmed: number;
  /** Leases past their deadline given back to pending before draining. */
  reaped: number;
  /** Retries whose backoff was over, moved back to pending before draining. */
  promoted: number;
  /** Claimed parents given back unstarted because the drain was stopped. */
  released: number;
  /** Pending parents seen when the drain started (a progress total). */
  pendingAtStart: number;
  durationMs: number;
}

/** Emitted for each parent recomputed. */
export interface RecomputedEvent {
  member: string;
  parent: string;
  id: ParentId;
  /**
   * Ms from the parent's first mark to the start of its recompute; measured for a sample (the
   * first 16 parents of each claimed window), undefined for the others.
   */
  waitMs: number | undefined;
  durationMs: number;
}

/** Emitted for each failed recompute. */
export interface FailedEvent {
  member: string;
  parent: string | undefined;
  id: ParentId | undefined;
  error: unknown;
  /** Attempts made so far, this one included. */
  attempt: number;
  /** True when the parent went to the dead set. */
  dead: boolean;
  /** When it will be tried again, if it will. */
  retryAt: number | undefined;
}

/** Resolved settings the drainer needs. */
export interface DrainerSettings {
  readonly leaseMs: number;
  readonly recomputeTimeoutMs: number;
  readonly retry: Readonly<RetryOptions>;
}

/** Hooks the facade gives the drainer to report what happens. */
export interface DrainerHooks {
  recomputed(event: RecomputedEvent): void;
  failed(event: FailedEvent): void;
}

interface Task {
  readonly parent: ParentType | undefined;
  readonly items: readonly { claim: Claimed; id: ParentId | undefined; error?: MalformedMemberError }[];
}

/** Largest number of consecutive windows lost entirely to other workers before a drain gives up. */
const MAX_LOST_ROUNDS = 1000;
/** Most leases reaped or retries promoted per call, repeated until none are left. */
const REQUEUE_LIMIT = 1000;
/**
 * Most parents claimed per round trip by default. Measured on 2 cores with a no-op recompute:
 * windows of 200 drain ~95,000 parents/s, 500 ~140,000/s; larger ones add little. The
 * claimer still shrinks windows so slow recomputes start well within their lease.
 */
const DEFAULT_WINDOW = 500;
/** Claimed parents per window whose first-mark time is read, for the wait figures. */
const WAIT_SAMPLE = 16;
/** Tasks started between two turns of the event loop. */
const YIELD_EVERY = 32;
/** A claimed parent is started only if this share of its lease is left. */
const LEASE_SAFETY = 0.25;

let workerSeq = 0;

/** Claims pending parents, recomputes them, acknowledges or fails them. */
export class Drainer {
  private readonly workerId = `${hostname()}:${process.pid}:${(workerSeq += 1)}:${Math.random().toString(36).slice(2, 8)}`;
  private tokenSeq = 0;
  /** Claims whose recompute is running now, in any drain of this drainer. */
  private readonly inflight = new Set<Claimed>();
  /** Recomputes past their timeout that have not ended yet, with their members. */
  private readonly overdue = new Map<Promise<void>, string[]>();
  private readonly watchdog: Watchdog;

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly dataSource: DataSource,
    private readonly settings: DrainerSettings,
    private readonly logger: Logger,
    private readonly hooks: DrainerHooks,
    private readonly clock: () => number,
  ) {
    this.watchdog = new Watchdog(settings.recomputeTimeoutMs);
  }

  /** Gives back expired leases and promotes due retries, each until none are left. */
  async requeue(): Promise<{ reaped: number; promoted: number }> {
    let reaped = 0;
    let promoted = 0;
    const until = async (step: () => Promise<number>): Promise<number> => {
      let total = 0;
      for (let n = REQUEUE_LIMIT; n === REQUEUE_LIMIT; total += n) n = await step();
      return total;
    };
    reaped += await until(() => this.store.reapExpired(this.clock(), REQUEUE_LIMIT));
    promoted += await until(() => this.store.promoteDue(this.clock(), REQUEUE_LIMIT));
    if (this.policy().settles) promoted += await until(() => this.store.promoteSettled(this.clock(), REQUEUE_LIMIT));
    if (reaped > 0) this.logger.warn({ reaped }, 'leases past their deadline given back to pending');
    return { reaped, promoted };
  }

  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    const started = this.clock();
    const concurrency = options.concurrency ?? 1;
    const maxWindow = options.window ?? DEFAULT_WINDOW;
    const max = options.max ?? Infinity;
    const deadline = options.maxMs === undefined ? Infinity : started + options.maxMs;
    const result: DrainResult = {
      claimed: 0,
      recomputed: 0,
      failed: 0,
      deadLettered: 0,
      lostRaces: 0,
      rearmed: 0,
      reaped: 0,
      promoted: 0,
      released: 0,
      pendingAtStart: 0,
      durationMs: 0,
    };
    Object.assign(result, await this.requeue());
    result.pendingAtStart = (await this.store.counts(started)).pending;

    const queue: Task[] = [];
    const running = new Set<Promise<void>>();
    const acks = new AckBuffer(this.store, result, this.logger, maxWindow, this.clock);
    // Start at the top; move off it only when another worker is met there.
    let offset = 0;
    const policy = this.policy();
    let lostRounds = 0;
    let avgTaskMs = 0;
    let timedTasks = 0;
    let startedTasks = 0;
    // Aborted: start nothing more and give back what is claimed. Max reached: claim no more,
    // but recompute what is claimed.
    const aborted = (): boolean => options.signal?.aborted === true || this.clock() >= deadline;
    const canClaim = (): boolean => !aborted() && result.claimed < max;

    /** Reads a window at the top of the set and claims it: 'empty' when nothing is pending. */
    const claimWindow = async (): Promise<Claimed[] | 'empty'> => {
      // Size the window so that what is claimed starts well within its lease.
      // Until a task has been timed, claim as many as there are slots.
      const budget =
        timedTasks > 0
          ? Math.floor((concurrency * this.settings.leaseMs * LEASE_SAFETY) / Math.max(avgTaskMs, 0.001))
          : concurrency;
      const size = Math.max(1, Math.min(maxWindow, max - result.claimed, Math.max(budget, concurrency)));
      const now = this.clock();
      if (policy.settles) result.promoted += await this.store.promoteSettled(now, size);
      // Parents past their maxWaitMs go first, most overdue first; then the hottest.
      const overdue = policy.caps ? await this.store.overdue(now, size) : [];
      let members: (string | WindowEntry)[] = overdue;
      if (overdue.length < size) {
        let top = await this.store.windowWithScores(offset, size - overdue.length);
        if (top.length === 0 && offset > 0) {
          offset = 0;
          top = await this.store.windowWithScores(0, size - overdue.length);
        }
        const seen = new Set(overdue);
        members = overdue.length === 0 ? top : [...overdue, ...top.filter((e) => !seen.has(e.member))];
      }
      if (members.length === 0) return 'empty';
      const claims = await this.store.claim(members, this.clock() + this.settings.leaseMs, this.nextToken(), WAIT_SAMPLE);
      result.lostRaces += members.length - claims.length;
      result.claimed += claims.length;
      if (claims.length < members.length && maxWindow > 1) {
        // Another worker reads the same part of the set: move one to three windows further
        // down (past the end, the next read starts from the top again), so workers spread out.
        offset += size * (1 + Math.floor(Math.random() * 3));
      }
      return claims;
    };

    // One promise per freed slot, not a race over every task in flight.
    let wake: (() => void) | undefined;
    const slotFreed = (): Promise<void> => new Promise<void>((resolve) => (wake = resolve));
    let prefetch: Promise<Claimed[] | 'empty'> | undefined;
    // An abort must not wait for a slot: it gives back what is claimed and unstarted at once.
    const onAbort = (): void => {
      const resume = wake;
      wake = undefined;
      resume?.();
    };
    options.signal?.addEventListener('abort', onAbort);
    // A failure (Redis gone mid-drain) must not leave work behind: it is thrown only once
    // every recompute this drain started has ended and its unstarted claims are given back.
    let failure: { error: unknown } | undefined;
    try {
      while (!aborted()) {
        while (running.size >= concurrency && !aborted()) await slotFreed();
        if (aborted()) break;
        if (queue.length === 0) {
          if (!prefetch && !canClaim()) break;
          const got = await (prefetch ?? claimWindow());
          prefetch = undefined;
          if (got === 'empty') {
            if (running.size > 0) {
              // A parent in flight may be marked again and come back at its ack.
              await slotFreed();
              continue;
            }
            if ((await acks.settle()) > 0) continue;
            break;
          }
          if (got.length === 0) {
            // Every member was taken by another worker: read the top again.
            lostRounds += 1;
            if (lostRounds >= MAX_LOST_ROUNDS) {
              this.logger.warn({ lostRounds }, 'every claim lost to other workers; ending this drain');
              break;
            }
            continue;
          }
          lostRounds = 0;
          queue.push(...this.tasksOf(got));
          options.onProgress?.({ ...result, durationMs: this.clock() - started });
          // Claim the next window while this one runs.
          if (canClaim()) prefetch = claimWindow();
          if (aborted()) break;
        }
        const task = queue.shift();
        if (!task) continue;
        // Recomputes that finish at once never leave the microtask queue: let I/O in now and
        // then, so the next window's claim goes out while this window is still running.
        if ((startedTasks += 1) % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        const p = this.run(task, result, acks).then((ms) => {
          avgTaskMs = timedTasks === 0 ? ms : avgTaskMs * 0.8 + ms * 0.2;
          timedTasks += 1;
          running.delete(p);
          const resume = wake;
          wake = undefined;
          resume?.();
        });
        running.add(p);
      }
    } catch (error) {
      failure = { error };
    }
    options.signal?.removeEventListener('abort', onAbort);
    // Give back the unstarted claims before waiting for the recomputes in flight, which may
    // outlast a shutdown's patience.
    const giveBack = async (): Promise<void> => {
      const leftover = await prefetch;
      const unstarted = queue.splice(0).flatMap((t) => t.items.map((i) => i.claim));
      if (Array.isArray(leftover)) unstarted.push(...leftover);
      if (unstarted.length > 0) result.released += await this.store.release(unstarted, this.clock());
    };
    // Whatever happens, the drain ends only when nothing it started runs.
    const gaveBack = await giveBack().then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    await Promise.all(running);
    const acked = await acks.settle().then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    const thrown = failure ?? gaveBack ?? acked;
    if (thrown) throw thrown.error;
    result.durationMs = this.clock() - started;
    options.onProgress?.(result);
    return result;
  }

  /** Whether any registered type has a quiet period or a wait cap (each costs a read per window). */
  private policy(): { settles: boolean; caps: boolean } {
    const types = this.registry.parentTypes();
    return { settles: types.some((t) => t.settleMs > 0), caps: types.some((t) => t.maxWaitMs !== undefined) };
  }

  private nextToken(): string {
    this.tokenSeq += 1;
    return `${this.workerId}:${this.tokenSeq}`;
  }

  /** Groups claims into tasks: batches of one type for recomputeMany, single parents otherwise. */
  private tasksOf(claims: readonly Claimed[]): Task[] {
    const tasks: Task[] = [];
    const batches = new Map<ParentType, Task['items'][number][]>();
    for (const claim of claims) {
      let decoded: ReturnType<Registry['decode']>;
      try {
        decoded = this.registry.decode(claim.member);
      } catch (error) {
        const err = error instanceof MalformedMemberError ? error : new MalformedMemberError(claim.member, errorMessage(error));
        tasks.push({ parent: undefined, items: [{ claim, id: undefined, error: err }] });
        continue;
      }
      const item = { claim, id: decoded.id };
      if (!decoded.parent.recomputeMany) {
        tasks.push({ parent: decoded.parent, items: [item] });
        continue;
      }
      const batch = batches.get(decoded.parent) ?? [];
      batch.push(item);
      if (batch.length >= decoded.parent.batchSize) {
        tasks.push({ parent: decoded.parent, items: batch });
        batches.delete(decoded.parent);
      } else {
        batches.set(decoded.parent, batch);
      }
    }
    for (const [parent, items] of batches) tasks.push({ parent, items });
    return tasks;
  }

  /** Runs one task, queues acks for what succeeded and records failures. Never throws. Returns its ms per parent (monotonic time, not the injected clock). */
  private async run(task: Task, result: DrainResult, acks: AckBuffer): Promise<number> {
    for (const item of task.items) this.inflight.add(item.claim);
    try {
      return await this.runTracked(task, result, acks);
    } finally {
      for (const item of task.items) this.inflight.delete(item.claim);
    }
  }

  /**
   * Waits up to `maxWaitMs` for recomputes that outlived their timeout, so that when they end
   * their parents are marked once more before the connections close. Those still running then
   * are named in a warning: their late writes are not covered.
   */
  async close(maxWaitMs: number): Promise<void> {
    if (this.overdue.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.overdue.keys()]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs))),
    ]);
    clearTimeout(timer);
    if (this.overdue.size > 0) {
      this.logger.warn(
        { members: [...this.overdue.values()].flat() },
        'closing while recomputes that outlived their timeout still run: if they write late, mark these parents again',
      );
    }
  }

  /**
   * Gives back to pending the parents whose recompute is still running (a shutdown that will
   * not wait for them longer). Their late acks then change nothing.
   */
  async releaseInflight(): Promise<number> {
    const claims = [...this.inflight];
    this.inflight.clear();
    return claims.length === 0 ? 0 : this.store.release(claims, this.clock());
  }

  private async runTracked(task: Task, result: DrainResult, acks: AckBuffer): Promise<number> {
    const timer = performance.now();
    const started = this.clock();
    const { parent } = task;
    // A parent that sat in the local queue until most of its lease was gone is given back
    // rather than risk running past the lease, when another worker may take it.
    const margin = this.settings.leaseMs * LEASE_SAFETY;
    const live = task.items.filter((item) => item.error || item.claim.deadline - started > margin);
    if (live.length < task.items.length) {
      const stale = task.items.filter((item) => !live.includes(item)).map((item) => item.claim);
      try {
        result.released += await this.store.release(stale, started);
      } catch (error) {
        this.logger.warn(
          { err: errorMessage(error), members: stale.map((c) => c.member) },
          'could not give back stale claims; their leases will expire',
        );
      }
    }
    const failures: { item: Task['items'][number]; error: unknown }[] = [];
    if (!parent) {
      for (const item of live) failures.push({ item, error: item.error });
    } else if (parent.recomputeMany && (live.length > 1 || !parent.recompute)) {
      try {
        await this.invoke(parent, live, (ids, ctx) =>
          (parent.recomputeMany as NonNullable<ParentType['recomputeMany']>)(ids, ctx),
        );
        for (const item of live) this.succeeded(parent, item, started, result, acks);
      } catch (error) {
        if (parent.recompute) {
          this.logger.warn(
            { parent: parent.name, ids: live.map((i) => i.id), err: errorMessage(error) },
            'recomputeMany failed; recomputing one by one',
          );
          await this.runEach(parent, live, result, acks, failures);
        } else {
          for (const item of live) failures.push({ item, error });
        }
      }
    } else {
      await this.runEach(parent, live, result, acks, failures);
    }
    if (failures.length > 0) await this.recordFailures(parent, failures, result);
    return (performance.now() - timer) / Math.max(1, task.items.length);
  }

  private async runEach(
    parent: ParentType,
    items: Task['items'],
    result: DrainResult,
    acks: AckBuffer,
    failures: { item: Task['items'][number]; error: unknown }[],
  ): Promise<void> {
    const recompute = parent.recompute as NonNullable<ParentType['recompute']>;
    for (const item of items) {
      const started = this.clock();
      try {
        await this.invoke(parent, [item], ([id], ctx) => recompute(id as ParentId, ctx));
        this.succeeded(parent, item, started, result, acks);
      } catch (error) {
        failures.push({ item, error });
      }
    }
  }

  /** Calls a recompute with its context, aborting it after `recomputeTimeoutMs`. */
  private invoke(
    parent: ParentType,
    items: Task['items'],
    call: (ids: ParentId[], ctx: RecomputeContext) => Promise<void>,
  ): Promise<void> {
    const ids = items.map((i) => i.id as ParentId);
    const ctx = new LazyContext(this.dataSource, this.logger, parent.name, ids, Math.max(...items.map((i) => i.claim.attempts)));
    return new Promise<void>((resolve, reject) => {
      let timeout: RecomputeTimeoutError | undefined;
      let settle: () => void = () => undefined;
      const watch = this.watchdog.watch(() => {
        timeout = new RecomputeTimeoutError(items[0]?.claim.member ?? parent.name, this.settings.recomputeTimeoutMs);
        ctx.abort(timeout);
        // Still running: close() waits for it, so its parents can be marked again when it ends.
        const overdue = new Promise<void>((resolve) => (settle = resolve));
        this.overdue.set(
          overdue,
          items.map((i) => i.claim.member),
        );
        void overdue.then(() => this.overdue.delete(overdue));
        reject(timeout);
      });
      // A recompute that ignores its signal may still write after its retry did, from an
      // older read: when it does end, its parents get one more recompute. One that stopped
      // with the abort's own reason did not write.
      const late = (settledWith?: unknown): void => {
        if (!timeout) return;
        if (settledWith === timeout) {
          settle();
          return;
        }
        const entries = items.map((i) => ({ member: i.claim.member, increment: 1, base: parent.base }));
        this.store
          .mark(entries, this.clock())
          .catch((error: unknown) => {
            this.logger.error(
              { err: errorMessage(error), members: entries.map((e) => e.member) },
              'could not mark again after a late recompute',
            );
          })
          .finally(settle);
      };
      let pending: Promise<void>;
      try {
        pending = call(ids, ctx);
      } catch (error) {
        pending = Promise.reject(error);
      }
      pending.then(
        () => {
          this.watchdog.unwatch(watch);
          late();
          resolve();
        },
        (error: unknown) => {
          this.watchdog.unwatch(watch);
          late(error);
          reject(error);
        },
      );
    });
  }

  private succeeded(
    parent: ParentType,
    item: Task['items'][number],
    started: number,
    result: DrainResult,
    acks: AckBuffer,
  ): void {
    const now = this.clock();
    result.recomputed += 1;
    const waitMs = item.claim.since === undefined ? undefined : started - item.claim.since;
    acks.add({ member: item.claim.member, token: item.claim.token, base: parent.base, waitMs });
    this.hooks.recomputed({
      member: item.claim.member,
      parent: parent.name,
      id: item.id as ParentId,
      waitMs,
      durationMs: now - started,
    });
  }

  private async recordFailures(
    parent: ParentType | undefined,
    failures: { item: Task['items'][number]; error: unknown }[],
    result: DrainResult,
  ): Promise<void> {
    const now = this.clock();
    const entries: FailEntry[] = [];
    const events: FailedEvent[] = [];
    for (const { item, error } of failures) {
      const attempt = item.claim.attempts + 1;
      // A member that cannot be decoded will never succeed: dead-letter it at once.
      const dead = !parent || attempt >= this.settings.retry.attempts;
      const retryAt = dead ? undefined : now + backoffMs(attempt, this.settings.retry);
      entries.push({ member: item.claim.member, token: item.claim.token, retryAt, error: errorMessage(error) });
      events.push({ member: item.claim.member, parent: parent?.name, id: item.id, error, attempt, dead, retryAt });
    }
    try {
      const { dead } = await this.store.fail(entries, now);
      result.failed += failures.length;
      result.deadLettered += dead;
    } catch (error) {
      // The leases stay; they expire and the parents come back to pending.
      this.logger.error(
        { err: errorMessage(error), members: entries.map((e) => e.member) },
        'could not record failed recomputes',
      );
      result.failed += failures.length;
    }
    for (const event of events) {
      this.logger.warn(
        {
          member: event.member,
          attempt: event.attempt,
          dead: event.dead,
          retryAt: event.retryAt,
          err: errorMessage(event.error),
        },
        event.dead ? 'recompute failed; parent dead-lettered' : 'recompute failed; will retry',
      );
      this.hooks.failed(event);
    }
  }
}
