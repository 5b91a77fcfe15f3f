import { AckBuffer } from './acks';
import { Claimer, type Claimed } from './claimer';
import type { Executor } from './executor';
import type { DrainParts, Round } from './parts';
import { requeue, type Requeued } from './reaper';
import type { Settler } from './settle';
import { tasksOf, type Task } from './tasks';
import { emptyResult, type DrainOptions, type DrainResult } from './types';

/** Largest number of consecutive windows lost entirely to other workers before a drain gives up. */
const MAX_LOST_ROUNDS = 1000;
/**
 * Most parents claimed per round trip by default. Measured on 2 cores with a no-op recompute:
 * windows of 200 drain ~95,000 parents/s, 500 ~140,000/s; larger ones add little.
 */
export const DEFAULT_WINDOW = 500;
/** Tasks started between two turns of the event loop. */
const YIELD_EVERY = 32;
/** Longest local queue a window is sized for (ms of recompute time per slot). */
const QUEUE_TARGET_MS = 2_000;

/** What the loop does after looking for work. */
type Next = 'run' | 'again' | 'stop';

/**
 * One drain: claims windows and runs their tasks, `concurrency` at a time, until no claimable
 * parent is left (those its own recomputes marked included) or a bound is hit, then gives back
 * what it claimed and did not start, and waits for what it started.
 */
export class DrainRun {
  readonly result: DrainResult = emptyResult();
  private readonly round: Round;
  private readonly claimer: Claimer;
  private readonly concurrency: number;
  private readonly maxWindow: number;
  private readonly max: number;
  private readonly deadline: number;
  private readonly started: number;
  private readonly queue: Task[] = [];
  /** One promise per task running now. */
  private readonly slots = new Set<Promise<void>>();
  private lostRounds = 0;
  private avgTaskMs = 0;
  private timedTasks = 0;
  private startedTasks = 0;
  private lastRequeue = 0;
  /** The last window was read while tasks ran or waited: empty, it proves nothing. */
  private readWhileBusy = false;
  /** Parents whose minimum interval this drain ended: once each. */
  private readonly cooled = new Set<string>();
  /** The next window, claimed while the current one runs. */
  private prefetch: Promise<Claimed[] | 'empty'> | undefined;
  /** Resolves the wait for a free slot (one promise per freed slot, not a race over every task). */
  private wake: (() => void) | undefined;

  constructor(
    private readonly parts: DrainParts,
    private readonly executor: Executor,
    private readonly settler: Settler,
    private readonly options: DrainOptions,
    foreign: ReadonlySet<string>,
  ) {
    const { keeper, settings } = parts;
    this.concurrency = options.concurrency ?? 1;
    this.maxWindow = options.window ?? DEFAULT_WINDOW;
    this.max = options.max ?? Infinity;
    this.started = parts.clock.now();
    this.deadline = options.maxMs === undefined ? Infinity : performance.now() + options.maxMs;
    const acks = new AckBuffer({
      outcomes: parts.outcomes,
      keeper,
      clock: parts.clock,
      logger: parts.logger,
      batch: this.maxWindow,
      totals: this.result,
    });
    this.round = { result: this.result, acks, chained: new Set() };
    this.claimer = new Claimer({
      claims: parts.claims,
      clock: parts.clock,
      keeper,
      leaseMs: settings.leaseMs,
      classify: (key) => parts.registry.classify(key, foreign),
      spread: this.maxWindow > 1,
    });
  }

  /** Runs the drain to its end; rejects (once everything it started has ended) when Redis fails. */
  async run(): Promise<DrainResult> {
    this.addRequeue(await requeue(this.parts));
    this.lastRequeue = performance.now();
    this.result.pendingAtStart = (await this.parts.reads.counts(this.started)).pending;
    const onAbort = (): void => this.resume();
    this.options.signal?.addEventListener('abort', onAbort);
    // A failure (Redis gone mid-drain) must not leave work behind: it is thrown only once every
    // recompute this drain started has ended and its unstarted claims are given back.
    let failure: { error: unknown } | undefined;
    try {
      await this.loop();
    } catch (error) {
      failure = { error };
    }
    this.options.signal?.removeEventListener('abort', onAbort);
    const thrown = failure ?? (await this.finish());
    if (thrown) throw thrown.error;
    this.result.durationMs = this.parts.clock.now() - this.started;
    this.options.onProgress?.(this.result);
    return this.result;
  }

  private async loop(): Promise<void> {
    while (!this.aborted()) {
      while (this.slots.size >= this.concurrency && !this.aborted()) await this.slotFreed();
      if (this.aborted()) return;
      if (performance.now() - this.lastRequeue >= this.parts.settings.leaseMs) {
        // A long drain still gives back the leases of workers that crashed meanwhile.
        this.addRequeue(await requeue(this.parts));
        this.lastRequeue = performance.now();
      }
      if (this.queue.length === 0) {
        const next = await this.fill();
        if (next === 'stop') return;
        if (next === 'again') continue;
      }
      const task = this.queue.shift();
      if (task) await this.start(task);
    }
  }

  /** Queues the next window's tasks; says whether to run them, look again, or stop. */
  private async fill(): Promise<Next> {
    if (!this.prefetch && !this.canClaim()) return 'stop';
    const got = await (this.prefetch ?? this.claimWindow());
    this.prefetch = undefined;
    if (got === 'empty') return this.whenEmpty();
    if (got.length === 0) {
      // Every member was taken by another worker: read again.
      this.lostRounds += 1;
      if (this.lostRounds >= MAX_LOST_ROUNDS) {
        this.parts.logger.warn({ lostRounds: this.lostRounds }, 'every claim lost to other workers; ending this drain');
        return 'stop';
      }
      return 'again';
    }
    this.lostRounds = 0;
    this.queue.push(...(await tasksOf(this.parts, this.settler, got, this.round)));
    this.options.onProgress?.({ ...this.result, durationMs: this.parts.clock.now() - this.started });
    // Claim the next window while this one runs. Handled now, awaited later: a rejection (Redis
    // gone) surfaces where it is awaited, never as an unhandled rejection.
    if (this.canClaim()) {
      this.prefetch = this.claimWindow();
      this.prefetch.catch(() => undefined);
    }
    return this.aborted() ? 'stop' : 'run';
  }

  /** Nothing claimable was read: end, unless the drain's own work may still bring some. */
  private async whenEmpty(): Promise<Next> {
    if (this.slots.size > 0) {
      // A parent in flight may be marked again and come back at its ack.
      await this.slotFreed();
      return 'again';
    }
    // Read while recomputes ran: read again, now that they are over.
    if (this.readWhileBusy) return 'again';
    if ((await this.round.acks.settle()) > 0) return 'again';
    // Parents this drain marked up their chains and left in a quiet period (marked while held,
    // re-armed at their ack): this drain recomputes them too.
    const chained = this.round.chained;
    if (chained.size > 0 && this.canClaim()) {
      const members = [...chained];
      chained.clear();
      if ((await this.parts.outcomes.promoteNow(members)) > 0) return 'again';
    }
    // Parents marked during their recompute wait out their minimum interval; a drain that is not
    // told to leave them (a runner's tick does) recomputes each of them once more before it
    // returns. One marked again meanwhile (sustained writes) is left in its interval.
    if (!this.options.leaveCooling && this.canClaim()) {
      const ended = await this.parts.outcomes.endCooling(this.cooled);
      for (const member of ended) this.cooled.add(member);
      if (ended.length > 0) return 'again';
    }
    return 'stop';
  }

  private async start(task: Task): Promise<void> {
    // Recomputes that finish at once never leave the microtask queue: let I/O in now and then,
    // so the next window's claim and the acks go out while this window still runs.
    if ((this.startedTasks += 1) % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const p = this.executor.run(task, this.round).then((ms) => {
      if (ms !== undefined) {
        this.avgTaskMs = this.timedTasks === 0 ? ms : this.avgTaskMs * 0.8 + ms * 0.2;
        this.timedTasks += 1;
      }
      this.slots.delete(p);
      this.resume();
    });
    this.slots.add(p);
  }

  private async claimWindow(): Promise<Claimed[] | 'empty'> {
    this.readWhileBusy = this.slots.size > 0 || this.queue.length > 0;
    const { leaseMs } = this.parts.settings;
    // Size the window so that what is claimed starts soon: until a task has been timed, as many
    // as there are slots.
    const budget =
      this.timedTasks > 0
        ? Math.floor((this.concurrency * Math.min(leaseMs / 4, QUEUE_TARGET_MS)) / Math.max(this.avgTaskMs, 0.001))
        : this.concurrency;
    const size = Math.max(1, Math.min(this.maxWindow, this.max - this.result.claimed, Math.max(budget, this.concurrency)));
    const before = this.claimer.lostRaces;
    const got = await this.claimer.next(size);
    this.result.lostRaces += this.claimer.lostRaces - before;
    if (got !== 'empty') this.result.claimed += got.length;
    return got;
  }

  /** Gives back what was claimed and not started, waits for what runs, settles the acks; returns a failure to throw. */
  private async finish(): Promise<{ error: unknown } | undefined> {
    // Unstarted claims first: the recomputes in flight may outlast a shutdown's patience.
    const gaveBack = await (async () => {
      const leftover = await this.prefetch?.catch(() => 'empty' as const);
      const unstarted = this.queue.splice(0).flatMap((t) => t.items.map((i) => i.claim));
      if (Array.isArray(leftover)) unstarted.push(...leftover.map((c) => c.claim));
      if (unstarted.length > 0) this.result.released += await this.settler.release(unstarted);
    })().then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    await Promise.all(this.slots);
    const acked = await this.round.acks.settle().then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    return gaveBack ?? acked;
  }

  /** Aborted: start nothing more and give back what is claimed. */
  private aborted(): boolean {
    return this.options.signal?.aborted === true || performance.now() >= this.deadline;
  }

  /** Max reached: claim no more, but recompute what is claimed. */
  private canClaim(): boolean {
    return !this.aborted() && this.result.claimed < this.max;
  }

  private slotFreed(): Promise<void> {
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  private resume(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private addRequeue(r: Requeued): void {
    this.result.reaped += r.reaped + r.deadLettered;
    this.result.promoted += r.promoted;
    this.result.deadLettered += r.deadLettered;
  }
}
