import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { FailEntry, MarkEntry, Store } from '../redis/store';
import type { ServerClock } from '../redis/clock';
import type { ParentId, ParentType, Registry } from '../registry';
import { StoppingError, errorMessage, quoteMember } from '../errors';
import { heatOf } from '../registry';
import { backoffMs, type RetryOptions } from './backoff';
import { AckBuffer } from './acks';
import { LazyContext } from './context';
import { runAsRecompute } from '../recompute-scope';
import { Invoker, type Outcome } from './invoke';
import { LeaseKeeper, type Claim } from './leases';
import { Claimer, claimedOf, type Claimed } from './claimer';
import { emptyResult, type DrainOptions, type DrainResult, type FailedEvent, type RecomputedEvent } from './types';

export type { DrainOptions, DrainResult, FailedEvent, RecomputedEvent } from './types';

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

interface Item {
  readonly claim: Claim;
  readonly id: ParentId;
}

interface Task {
  readonly parent: ParentType;
  readonly items: readonly Item[];
}

/** A recompute call running now, so a shutdown can abort it. */
interface Running {
  readonly ctx: LazyContext;
  readonly claims: readonly Claim[];
}

/** What one drain (or one recomputeNow) carries through its tasks. */
interface Round {
  readonly result: DrainResult;
  readonly acks: AckBuffer;
  /** Members its recomputes marked up their chains: recomputed by this drain, quiet period or not. */
  readonly chained: Set<string>;
}

/** Largest number of consecutive windows lost entirely to other workers before a drain gives up. */
const MAX_LOST_ROUNDS = 1000;
/** Most leases reaped or retries promoted per call, repeated until none are left. */
const REQUEUE_LIMIT = 1000;
/**
 * Most parents claimed per round trip by default. Measured on 2 cores with a no-op recompute:
 * windows of 200 drain ~95,000 parents/s, 500 ~140,000/s; larger ones add little.
 */
const DEFAULT_WINDOW = 500;
/** Tasks started between two turns of the event loop. */
const YIELD_EVERY = 32;
/** Longest local queue a window is sized for (ms of recompute time per slot). */
const QUEUE_TARGET_MS = 2_000;

/** Claims pending parents, recomputes them, acknowledges or fails them. */
export class Drainer {
  private readonly keeper: LeaseKeeper;
  private readonly invoker: Invoker;
  /** Recompute calls running now, in any drain of this drainer. */
  private readonly running = new Set<Running>();

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly dataSource: DataSource,
    private readonly settings: DrainerSettings,
    private readonly logger: Logger,
    private readonly hooks: DrainerHooks,
    private readonly clock: ServerClock,
  ) {
    this.keeper = new LeaseKeeper(store, clock, settings.leaseMs, logger);
    // A timed-out recompute gets a lease's length to stop while its leases are kept alive.
    this.invoker = new Invoker(settings.recomputeTimeoutMs, settings.leaseMs, store, clock, logger);
  }

  /** Gives back expired leases (counting each as an attempt) and promotes due retries, each until none are left. */
  async requeue(): Promise<{ reaped: number; promoted: number; deadLettered: number }> {
    let reaped = 0;
    let deadLettered = 0;
    for (let n = REQUEUE_LIMIT; n === REQUEUE_LIMIT;) {
      const r = await this.store.reapExpired(this.clock.now(), REQUEUE_LIMIT, this.settings.retry.attempts);
      n = r.requeued + r.dead;
      reaped += r.requeued;
      deadLettered += r.dead;
    }
    let promoted = 0;
    for (let n = REQUEUE_LIMIT; n === REQUEUE_LIMIT; promoted += n)
      n = await this.store.promoteDue(this.clock.now(), REQUEUE_LIMIT);
    if (reaped + deadLettered > 0) {
      this.logger.warn(
        { reaped, deadLettered },
        'leases past their deadline given back to pending (a worker crashed or stalled); at the attempt limit, dead-lettered',
      );
    }
    return { reaped, promoted, deadLettered };
  }

  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    const started = this.clock.now();
    const startedAt = performance.now();
    const concurrency = options.concurrency ?? 1;
    const maxWindow = options.window ?? DEFAULT_WINDOW;
    const max = options.max ?? Infinity;
    const deadline = options.maxMs === undefined ? Infinity : startedAt + options.maxMs;
    const result = emptyResult();
    const addRequeue = (r: { reaped: number; promoted: number; deadLettered: number }): void => {
      result.reaped += r.reaped + r.deadLettered;
      result.promoted += r.promoted;
      result.deadLettered += r.deadLettered;
    };
    addRequeue(await this.requeue());
    let lastRequeue = performance.now();
    result.pendingAtStart = (await this.store.counts(started)).pending;
    const registered = new Set(this.registry.parentNames());
    const foreign = new Set([...(await this.store.policyTypes())].filter((t) => !registered.has(t)));
    const claimer = new Claimer(
      this.store,
      this.clock,
      this.settings.leaseMs,
      (key) => this.registry.classify(key, foreign),
      maxWindow > 1,
    );

    const queue: Task[] = [];
    const slots = new Set<Promise<void>>();
    const acks = new AckBuffer(this.store, this.keeper, result, this.logger, maxWindow, this.clock);
    const round: Round = { result, acks, chained: new Set() };
    let lostRounds = 0;
    let avgTaskMs = 0;
    let timedTasks = 0;
    let startedTasks = 0;
    // Aborted: start nothing more and give back what is claimed. Max reached: claim no more,
    // but recompute what is claimed.
    const aborted = (): boolean => options.signal?.aborted === true || performance.now() >= deadline;
    const canClaim = (): boolean => !aborted() && result.claimed < max;

    // A window read while tasks ran or waited proves nothing when it comes back empty: their
    // recomputes may still mark parents (the next ones of a chain, "one more" re-marks).
    let readWhileBusy = false;
    const claimWindow = async (): Promise<Claimed[] | 'empty'> => {
      readWhileBusy = slots.size > 0 || queue.length > 0;
      // Size the window so that what is claimed starts soon: until a task has been timed, as
      // many as there are slots.
      const budget =
        timedTasks > 0
          ? Math.floor((concurrency * Math.min(this.settings.leaseMs / 4, QUEUE_TARGET_MS)) / Math.max(avgTaskMs, 0.001))
          : concurrency;
      const size = Math.max(1, Math.min(maxWindow, max - result.claimed, Math.max(budget, concurrency)));
      const before = claimer.lostRaces;
      const got = await claimer.next(size);
      result.lostRaces += claimer.lostRaces - before;
      if (got !== 'empty') {
        result.claimed += got.length;
        this.keeper.hold(got.map((g) => g.claim));
      }
      return got;
    };

    // One promise per freed slot, not a race over every task in flight.
    let wake: (() => void) | undefined;
    const slotFreed = (): Promise<void> => new Promise<void>((resolve) => (wake = resolve));
    let prefetch: Promise<Claimed[] | 'empty'> | undefined;
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
        while (slots.size >= concurrency && !aborted()) await slotFreed();
        if (aborted()) break;
        if (performance.now() - lastRequeue >= this.settings.leaseMs) {
          // A long drain still gives back the leases of workers that crashed meanwhile.
          addRequeue(await this.requeue());
          lastRequeue = performance.now();
        }
        if (queue.length === 0) {
          if (!prefetch && !canClaim()) break;
          const got = await (prefetch ?? claimWindow());
          prefetch = undefined;
          if (got === 'empty') {
            if (slots.size > 0) {
              // A parent in flight may be marked again and come back at its ack.
              await slotFreed();
              continue;
            }
            // Read while recomputes ran: read again, now that they are over.
            if (readWhileBusy) continue;
            if ((await acks.settle()) > 0) continue;
            // Parents this drain marked up their chains and left in a quiet period (marked while
            // held, re-armed at their ack): this drain recomputes them too.
            if (round.chained.size > 0 && canClaim()) {
              const chained = [...round.chained];
              round.chained.clear();
              if ((await this.store.promoteNow(chained)) > 0) continue;
            }
            break;
          }
          if (got.length === 0) {
            // Every member was taken by another worker: read again.
            lostRounds += 1;
            if (lostRounds >= MAX_LOST_ROUNDS) {
              this.logger.warn({ lostRounds }, 'every claim lost to other workers; ending this drain');
              break;
            }
            continue;
          }
          lostRounds = 0;
          queue.push(...(await this.tasksOf(got, round)));
          options.onProgress?.({ ...result, durationMs: this.clock.now() - started });
          // Claim the next window while this one runs. Handled now, awaited later: a rejection
          // (Redis gone) surfaces where it is awaited, never as an unhandled rejection.
          if (canClaim()) {
            prefetch = claimWindow();
            prefetch.catch(() => undefined);
          }
          if (aborted()) break;
        }
        const task = queue.shift();
        if (!task) continue;
        // Recomputes that finish at once never leave the microtask queue: let I/O in now and
        // then, so the next window's claim and the acks go out while this window still runs.
        if ((startedTasks += 1) % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        const p = this.run(task, round).then((ms) => {
          if (ms !== undefined) {
            avgTaskMs = timedTasks === 0 ? ms : avgTaskMs * 0.8 + ms * 0.2;
            timedTasks += 1;
          }
          slots.delete(p);
          const resume = wake;
          wake = undefined;
          resume?.();
        });
        slots.add(p);
      }
    } catch (error) {
      failure = { error };
    }
    options.signal?.removeEventListener('abort', onAbort);
    // Give back the unstarted claims before waiting for the recomputes in flight, which may
    // outlast a shutdown's patience.
    const gaveBack = await (async () => {
      const leftover = await prefetch?.catch(() => 'empty' as const);
      const unstarted = queue.splice(0).flatMap((t) => t.items.map((i) => i.claim));
      if (Array.isArray(leftover)) unstarted.push(...leftover.map((c) => c.claim));
      if (unstarted.length > 0) result.released += await this.release(unstarted);
    })().then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    await Promise.all(slots);
    const acked = await acks.settle().then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    const thrown = failure ?? gaveBack ?? acked;
    if (thrown) throw thrown.error;
    result.durationMs = this.clock.now() - started;
    options.onProgress?.(result);
    return result;
  }

  /**
   * Claims the named members now, if they are pending, and recomputes them in this process
   * through the same leases and acknowledgements as a drain (never alongside another worker).
   * Members held by another worker, or not pending, are left alone (counted as lost races).
   */
  async recomputeNow(members: readonly string[]): Promise<DrainResult> {
    const result = emptyResult();
    const candidates = members.map((m) => ({ key: Buffer.from(m), score: '' }));
    const kinds = candidates.map((c) => this.registry.classify(c.key)).filter((k) => k.kind !== 'foreign');
    if (kinds.length < candidates.length) throw new Error('recomputeNow(): only members of registered parent types');
    const validUntil = performance.now() + this.settings.leaseMs;
    const { token, won } = await this.store.claim(candidates, this.clock.now() + this.settings.leaseMs);
    result.claimed = won.length;
    result.lostRaces = candidates.length - won.length;
    const claimed = claimedOf(candidates, kinds as Claimed['what'][], token, won, validUntil);
    this.keeper.hold(claimed.map((c) => c.claim));
    const acks = new AckBuffer(this.store, this.keeper, result, this.logger, DEFAULT_WINDOW, this.clock);
    const round: Round = { result, acks, chained: new Set() };
    const tasks = await this.tasksOf(claimed, round);
    await Promise.all(tasks.map((t) => this.run(t, round)));
    await acks.settle();
    return result;
  }

  /**
   * Groups a window's claims into tasks: batches of one type for recomputeMany, single parents
   * otherwise. Malformed members are dead-lettered at once; members spelled another way than
   * their parent's canonical member pass their heat to it.
   */
  private async tasksOf(claimed: readonly Claimed[], round: Round): Promise<Task[]> {
    const tasks: Task[] = [];
    const batches = new Map<ParentType, Item[]>();
    const malformed: { claim: Claim; error: unknown }[] = [];
    const aliases: { claim: Claim; parent: ParentType; canonical: string }[] = [];
    for (const { claim, what } of claimed) {
      if (what.kind === 'malformed') {
        malformed.push({ claim, error: what.error });
        continue;
      }
      if (what.kind === 'alias') {
        aliases.push({ claim, parent: what.parent, canonical: what.canonical });
        continue;
      }
      const { parent } = what;
      const item = { claim, id: what.id };
      if (!parent.recomputeMany) {
        tasks.push({ parent, items: [item] });
        continue;
      }
      const batch = batches.get(parent) ?? [];
      batch.push(item);
      if (batch.length >= parent.batchSize) {
        tasks.push({ parent, items: batch });
        batches.delete(parent);
      } else {
        batches.set(parent, batch);
      }
    }
    for (const [parent, items] of batches) tasks.push({ parent, items });
    if (malformed.length > 0) await this.recordFailures(undefined, malformed, round.result);
    if (aliases.length > 0) await this.redirect(aliases, round);
    return tasks;
  }

  /** Moves the heat of aliases (`Order:00042`) to their canonical member, then ends their claims. */
  private async redirect(
    aliases: readonly { claim: Claim; parent: ParentType; canonical: string }[],
    { result, acks }: Round,
  ): Promise<void> {
    const marks: MarkEntry[] = aliases.map((a) => ({
      member: a.canonical,
      increment: Math.max(1, heatOf(a.claim.score)),
      base: a.parent.base,
    }));
    await this.store.mark(marks, this.clock.now());
    this.logger.warn(
      { members: aliases.slice(0, 20).map((a) => `${a.claim.member} -> ${a.canonical}`), count: aliases.length },
      'members not spelled canonically: their heat moved to the canonical member',
    );
    for (const a of aliases) acks.add({ key: a.claim.key, token: a.claim.token, base: a.parent.base }, a.claim);
    result.redirected += aliases.length;
  }

  /** Runs one task; never throws. Returns its ms per parent (real time), or undefined when nothing ran. */
  private async run(task: Task, round: Round): Promise<number | undefined> {
    const timer = performance.now();
    const { parent } = task;
    const live = await this.startable(task.items, round.result);
    if (live.length === 0) return undefined;
    if (parent.recomputeMany && (live.length > 1 || !parent.recompute)) {
      const many = parent.recomputeMany;
      const started = this.clock.now();
      const outcome = await this.call(parent, live, (ids, ctx) => many(ids, ctx));
      if (outcome.kind === 'error' && parent.recompute) {
        this.logger.warn(
          { parent: parent.name, ids: live.map((i) => i.id), err: errorMessage(outcome.error) },
          'recomputeMany failed; recomputing one by one',
        );
        await this.runEach(parent, live, round);
      } else {
        await this.settle(parent, live, outcome, started, round);
      }
    } else {
      await this.runEach(parent, live, round, true);
    }
    return (performance.now() - timer) / task.items.length;
  }

  /** Recomputes items one by one; `checked`: the first one's lease was just checked. */
  private async runEach(parent: ParentType, items: readonly Item[], round: Round, checked = false): Promise<void> {
    const recompute = parent.recompute as NonNullable<ParentType['recompute']>;
    for (const [i, item] of items.entries()) {
      // Each one checks its lease again: the ones before it may have taken long.
      const live = checked && i === 0 ? item : (await this.startable([item], round.result))[0];
      if (!live) continue;
      const started = this.clock.now();
      const outcome = await this.call(parent, [live], ([id], ctx) => recompute(id as ParentId, ctx));
      await this.settle(parent, [live], outcome, started, round);
    }
  }

  /**
   * The items whose lease is still owned with a safe margin; the others are given back (a lease
   * that ran short) or left (a lease already lost), never started.
   */
  private async startable(items: readonly Item[], result: DrainResult): Promise<readonly Item[]> {
    if (items.every((i) => this.keeper.valid(i.claim))) return items;
    const live = items.filter((i) => this.keeper.valid(i.claim));
    const stale = items.filter((i) => !live.includes(i)).map((i) => i.claim);
    result.released += await this.release(stale.filter((c) => !c.lost)).catch((error: unknown) => {
      this.logger.warn(
        { err: errorMessage(error), members: stale.map((c) => c.member) },
        'could not give back claims whose lease ran short; their leases will expire',
      );
      return 0;
    });
    for (const c of stale) this.keeper.drop(c);
    return live;
  }

  /** Calls a recompute with its context; a lost lease aborts its signal. */
  private async call(
    parent: ParentType,
    items: readonly Item[],
    fn: (ids: ParentId[], ctx: LazyContext) => Promise<void>,
  ): Promise<Outcome> {
    const ids = items.map((i) => i.id);
    const claims = items.map((i) => i.claim);
    const first = claims[0] as Claim;
    const ctx = new LazyContext(
      this.dataSource,
      this.logger,
      parent.name,
      ids,
      Math.max(...claims.map((c) => c.attempts)),
      Number(first.token),
    );
    const running: Running = { ctx, claims };
    for (const c of claims) c.onLost = (reason) => ctx.abort(reason);
    this.running.add(running);
    try {
      return await this.invoker.invoke(
        ctx,
        // The recompute's own writes are not a host's: capture knows them by this scope.
        this.hooks.scoped?.() ? () => runAsRecompute(() => fn(ids, ctx)) : () => fn(ids, ctx),
        first.member,
        () => claims.map((c) => ({ member: c.member, increment: 1, base: parent.base })),
      );
    } finally {
      this.running.delete(running);
      for (const c of claims) c.onLost = undefined;
    }
  }

  /** Acknowledges, fails or gives back the items of one call, by how it ended. */
  private async settle(
    parent: ParentType,
    items: readonly Item[],
    outcome: Outcome,
    started: number,
    { result, acks, chained }: Round,
  ): Promise<void> {
    if (outcome.kind === 'ok' && this.hooks.beforeAck) {
      try {
        const pending = this.hooks.beforeAck(parent, () => items.map((i) => i.id));
        if (pending) for (const member of await pending) chained.add(member);
      } catch (error) {
        outcome = { kind: 'error', error };
      }
    }
    switch (outcome.kind) {
      case 'ok': {
        const now = this.clock.now();
        for (const { claim, id } of items) {
          result.recomputed += 1;
          const waitMs = claim.since === undefined ? undefined : started - claim.since;
          acks.add({ key: claim.key, token: claim.token, base: parent.base, waitMs }, claim);
          this.hooks.recomputed({ member: claim.member, parent: parent.name, id, waitMs, durationMs: now - started });
        }
        return;
      }
      case 'aborted': {
        // It stopped when told to, and wrote nothing: its parents go back with their heat,
        // no attempt counted (a lost lease is already someone else's).
        const held = items.map((i) => i.claim).filter((c) => !c.lost);
        result.released += await this.release(held).catch(() => 0);
        for (const i of items) this.keeper.drop(i.claim);
        if (!(outcome.reason instanceof StoppingError)) {
          this.logger.info(
            { members: items.map((i) => i.claim.member), reason: errorMessage(outcome.reason) },
            'recompute aborted',
          );
        }
        return;
      }
      case 'error':
      case 'timeout':
        await this.recordFailures(
          parent,
          items.map((i) => ({ claim: i.claim, id: i.id, error: outcome.error })),
          result,
        );
        return;
    }
  }

  /** Gives claims back to pending (checked by token) and stops keeping them; returns how many went back. */
  private async release(claims: readonly Claim[]): Promise<number> {
    if (claims.length === 0) return 0;
    for (const c of claims) c.ending = true;
    try {
      return await this.store.release(
        claims.map((c) => ({ key: c.key, token: c.token })),
        this.clock.now(),
      );
    } finally {
      for (const c of claims) this.keeper.drop(c);
    }
  }

  /**
   * Stops the recomputes running now (a shutdown that will not wait for them longer): their
   * signals are aborted with a StoppingError, and each one that stops within `waitMs` gives its
   * parents back to pending at once. One that ignores its signal keeps its parents until it
   * ends, or until its leases expire once this process is gone: a parent is never handed to
   * another worker while its recompute may still write. Returns how many parents went back.
   */
  async releaseInflight(waitMs = 1_000): Promise<number> {
    const running = [...this.running];
    if (running.length === 0) return 0;
    const before = running.flatMap((r) => r.claims);
    for (const r of running) r.ctx.abort(new StoppingError(r.claims[0]?.member ?? 'parent'));
    const until = performance.now() + waitMs;
    while (performance.now() < until && running.some((r) => this.running.has(r))) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // What still runs stops being renewed: after its lease, the parent is another worker's.
    const stuck = running.filter((r) => this.running.has(r)).flatMap((r) => r.claims);
    for (const c of stuck) this.keeper.drop(c);
    if (stuck.length > 0) {
      this.logger.warn(
        { members: stuck.slice(0, 20).map((c) => c.member), count: stuck.length },
        'recomputes ignored their abort signal: their parents come back to pending when the leases expire',
      );
    }
    return before.length - stuck.length;
  }

  /**
   * Waits up to `maxWaitMs` for recomputes that outlived their timeout, so that their parents
   * can be marked once more before the connections close; then stops renewing leases.
   */
  async close(maxWaitMs: number): Promise<void> {
    await this.invoker.close(maxWaitMs);
    this.keeper.stop();
  }

  private async recordFailures(
    parent: ParentType | undefined,
    failures: readonly { claim: Claim; id?: ParentId; error: unknown }[],
    result: DrainResult,
  ): Promise<void> {
    const now = this.clock.now();
    const entries: FailEntry[] = [];
    const events: FailedEvent[] = [];
    for (const { claim, id, error } of failures) {
      const attempt = claim.attempts + 1;
      // A member that cannot be decoded will never succeed: dead-letter it at once.
      const dead = !parent || attempt >= this.settings.retry.attempts;
      const retryAt = dead ? undefined : now + backoffMs(attempt, this.settings.retry);
      entries.push({ key: claim.key, token: claim.token, retryAt, error: errorMessage(error), base: parent?.base ?? 0 });
      events.push({ member: claim.member, parent: parent?.name, id, error, attempt, dead, retryAt });
    }
    result.failed += failures.length;
    for (const f of failures) f.claim.ending = true;
    try {
      const { dead, superseded } = await this.store.fail(entries, now);
      result.deadLettered += dead;
      result.superseded += superseded;
    } catch (error) {
      // The leases expire; the parents come back to pending.
      this.logger.error({ err: errorMessage(error), members: events.map((e) => e.member) }, 'could not record failed recomputes');
    } finally {
      for (const f of failures) this.keeper.drop(f.claim);
    }
    for (const event of events) {
      this.logger.warn(
        {
          member: event.member.length > 200 ? quoteMember(event.member) : event.member,
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
