import { hostname } from 'node:os';
import type { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import type { AckEntry, Claimed, FailEntry, Store } from '../redis/store';
import type { ParentId, ParentType, Registry } from '../registry';
import { errorMessage, MalformedMemberError, RecomputeTimeoutError } from '../errors';
import { backoffMs, type RetryOptions } from './backoff';

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
   * @defaultValue 200
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
  /** Ms from the parent's first mark to the start of its recompute, when known. */
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
/** A claimed parent is started only if this share of its lease is left. */
const LEASE_SAFETY = 0.25;

let workerSeq = 0;

/** Claims pending parents, recomputes them, acknowledges or fails them. */
export class Drainer {
  private readonly workerId = `${hostname()}:${process.pid}:${(workerSeq += 1)}:${Math.random().toString(36).slice(2, 8)}`;
  private tokenSeq = 0;

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly dataSource: DataSource,
    private readonly settings: DrainerSettings,
    private readonly logger: Logger,
    private readonly hooks: DrainerHooks,
    private readonly clock: () => number,
  ) {}

  /** Gives back expired leases and promotes due retries, each until none are left. */
  async requeue(): Promise<{ reaped: number; promoted: number }> {
    let reaped = 0;
    let promoted = 0;
    for (let n = REQUEUE_LIMIT; n === REQUEUE_LIMIT; reaped += n) n = await this.store.reapExpired(this.clock(), REQUEUE_LIMIT);
    for (let n = REQUEUE_LIMIT; n === REQUEUE_LIMIT; promoted += n) n = await this.store.promoteDue(this.clock(), REQUEUE_LIMIT);
    if (reaped > 0) this.logger.warn({ reaped }, 'leases past their deadline given back to pending');
    return { reaped, promoted };
  }

  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    const started = this.clock();
    const concurrency = options.concurrency ?? 1;
    const maxWindow = options.window ?? 200;
    const max = options.max ?? Infinity;
    const deadline = options.maxMs === undefined ? Infinity : started + options.maxMs;
    const result: DrainResult = {
      claimed: 0, recomputed: 0, failed: 0, deadLettered: 0, lostRaces: 0, rearmed: 0,
      reaped: 0, promoted: 0, released: 0, pendingAtStart: 0, durationMs: 0,
    };
    Object.assign(result, await this.requeue());
    result.pendingAtStart = (await this.store.counts(started)).pending;

    const queue: Task[] = [];
    const running = new Set<Promise<void>>();
    const acks: AckEntry[] = [];
    let offset = maxWindow > 1 ? Math.floor(Math.random() * maxWindow) : 0;
    let lostRounds = 0;
    let avgTaskMs = 0;
    const stopped = (): boolean =>
      options.signal?.aborted === true || result.claimed >= max || this.clock() >= deadline;
    const flushAcks = async (): Promise<void> => {
      if (acks.length === 0) return;
      const { rearmed, lost } = await this.store.ack(acks.splice(0));
      result.rearmed += rearmed;
      if (lost > 0) this.logger.warn({ lost }, 'recomputed parents whose lease had expired and passed to another worker');
    };

    while (!stopped()) {
      while (running.size >= concurrency) await Promise.race(running);
      if (queue.length === 0) {
        await flushAcks();
        // Size the window so that what is claimed starts well within its lease.
        const budget = avgTaskMs > 0 ? Math.floor((concurrency * this.settings.leaseMs * LEASE_SAFETY) / avgTaskMs) : concurrency;
        const size = Math.max(1, Math.min(maxWindow, max - result.claimed, Math.max(budget, concurrency)));
        const members = await this.store.window(offset, size);
        if (members.length === 0) {
          if (offset > 0) {
            offset = 0;
            continue;
          }
          if (running.size > 0) {
            // A parent in flight may be marked again and come back at its ack.
            await Promise.race(running);
            continue;
          }
          if (acks.length > 0) continue;
          break;
        }
        const claims = await this.store.claim(members, this.clock() + this.settings.leaseMs, this.nextToken());
        result.lostRaces += members.length - claims.length;
        if (claims.length === 0) {
          // Every member was taken by another worker: read the top again, from elsewhere in it.
          lostRounds += 1;
          if (lostRounds >= MAX_LOST_ROUNDS) {
            this.logger.warn({ lostRounds }, 'every claim lost to other workers; ending this drain');
            break;
          }
          offset = maxWindow > 1 ? Math.floor(Math.random() * maxWindow) : 0;
          continue;
        }
        lostRounds = 0;
        result.claimed += claims.length;
        queue.push(...this.tasksOf(claims));
        options.onProgress?.({ ...result, durationMs: this.clock() - started });
      }
      const task = queue.shift();
      if (!task) continue;
      const p = this.run(task, result, acks).then((ms) => {
        avgTaskMs = avgTaskMs === 0 ? ms : avgTaskMs * 0.8 + ms * 0.2;
        running.delete(p);
      });
      running.add(p);
    }
    await Promise.all(running);
    await flushAcks();
    const unstarted = queue.splice(0).flatMap((t) => t.items.map((i) => i.claim));
    if (unstarted.length > 0) result.released = await this.store.release(unstarted, this.clock());
    result.durationMs = this.clock() - started;
    options.onProgress?.(result);
    return result;
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

  /** Runs one task, queues acks for what succeeded and records failures. Never throws. Returns its ms per parent. */
  private async run(task: Task, result: DrainResult, acks: AckEntry[]): Promise<number> {
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
        this.logger.warn({ err: errorMessage(error), members: stale.map((c) => c.member) }, 'could not give back stale claims; their leases will expire');
      }
    }
    const failures: { item: Task['items'][number]; error: unknown }[] = [];
    if (!parent) {
      for (const item of live) failures.push({ item, error: item.error });
    } else if (parent.recomputeMany && (live.length > 1 || !parent.recompute)) {
      try {
        await this.invoke(parent, live, (ids, ctx) => (parent.recomputeMany as NonNullable<ParentType['recomputeMany']>)(ids, ctx));
        for (const item of live) this.succeeded(parent, item, started, result, acks);
      } catch (error) {
        if (parent.recompute) {
          this.logger.warn({ parent: parent.name, ids: live.map((i) => i.id), err: errorMessage(error) }, 'recomputeMany failed; recomputing one by one');
          await this.runEach(parent, live, result, acks, failures);
        } else {
          for (const item of live) failures.push({ item, error });
        }
      }
    } else {
      await this.runEach(parent, live, result, acks, failures);
    }
    if (failures.length > 0) await this.recordFailures(parent, failures, result);
    return (this.clock() - started) / Math.max(1, task.items.length);
  }

  private async runEach(
    parent: ParentType,
    items: Task['items'],
    result: DrainResult,
    acks: AckEntry[],
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
  private async invoke(
    parent: ParentType,
    items: Task['items'],
    call: (ids: ParentId[], ctx: Parameters<NonNullable<ParentType['recompute']>>[1]) => Promise<void>,
  ): Promise<void> {
    const ids = items.map((i) => i.id as ParentId);
    const controller = new AbortController();
    const timeoutMs = this.settings.recomputeTimeoutMs;
    const logger = this.logger.child({ parent: parent.name, ids: ids.length === 1 ? ids[0] : ids });
    const attempt = Math.max(...items.map((i) => i.claim.attempts));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new RecomputeTimeoutError(items[0]?.claim.member ?? parent.name, timeoutMs);
        controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    try {
      await Promise.race([call(ids, { manager: this.dataSource.manager, signal: controller.signal, attempt, logger }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private succeeded(parent: ParentType, item: Task['items'][number], started: number, result: DrainResult, acks: AckEntry[]): void {
    const now = this.clock();
    result.recomputed += 1;
    acks.push({ member: item.claim.member, token: item.claim.token, base: parent.base });
    this.hooks.recomputed({
      member: item.claim.member,
      parent: parent.name,
      id: item.id as ParentId,
      waitMs: item.claim.since === undefined ? undefined : started - item.claim.since,
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
      this.logger.error({ err: errorMessage(error), members: entries.map((e) => e.member) }, 'could not record failed recomputes');
      result.failed += failures.length;
    }
    for (const event of events) {
      this.logger.warn(
        { member: event.member, attempt: event.attempt, dead: event.dead, retryAt: event.retryAt, err: errorMessage(event.error) },
        event.dead ? 'recompute failed; parent dead-lettered' : 'recompute failed; will retry',
      );
      this.hooks.failed(event);
    }
  }
}
