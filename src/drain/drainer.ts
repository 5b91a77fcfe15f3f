import { StoppingError } from '../errors';
import { AckBuffer } from './acks';
import { claimedOf, type Claimed } from './claimer';
import { Executor } from './executor';
import { Invoker } from './invoke';
import { LeaseKeeper } from './leases';
import type { DrainHooks, DrainParts, DrainSettings, Round } from './parts';
import { requeue, type Requeued } from './reaper';
import { DEFAULT_WINDOW, DrainRun } from './run';
import { Settler } from './settle';
import { tasksOf } from './tasks';
import { emptyResult, type DrainOptions, type DrainResult } from './types';

export type { DrainOptions, DrainResult, FailedEvent, RecomputedEvent } from './types';
export type { DrainHooks, DrainSettings } from './parts';

/** What a drainer is built from: the parts every drain shares, but the ones it makes itself. */
export type DrainerOptions = Omit<DrainParts, 'keeper' | 'invoker'> & {
  readonly settings: DrainSettings;
  readonly hooks: DrainHooks;
};

/**
 * Claims pending parents, recomputes them, acknowledges or fails them: drains, recomputes of
 * named parents now, and the stop of what runs. One lease keeper and one invoker serve every
 * drain of the process.
 */
export class Drainer {
  private readonly parts: DrainParts;
  private readonly settler: Settler;
  private readonly executor: Executor;

  constructor(options: DrainerOptions) {
    const { settings } = options;
    const keeper = new LeaseKeeper({
      claims: options.claims,
      clock: options.clock,
      leaseMs: settings.leaseMs,
      logger: options.logger,
    });
    // A timed-out recompute gets a lease's length to stop while its leases are kept alive.
    const invoker = new Invoker({
      timeoutMs: settings.recomputeTimeoutMs,
      graceMs: settings.leaseMs,
      marks: options.marks,
      clock: options.clock,
      logger: options.logger,
    });
    this.parts = { ...options, keeper, invoker };
    this.settler = new Settler(this.parts);
    this.executor = new Executor(this.parts, this.settler);
  }

  /** Gives back expired leases (counting each as an attempt) and promotes due retries, each until none are left. */
  requeue(): Promise<Requeued> {
    return requeue(this.parts);
  }

  /** One drain; see {@link DrainRun}. */
  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    const registered = new Set(this.parts.registry.parentNames());
    const foreign = new Set([...(await this.parts.epochs.policyTypes())].filter((t) => !registered.has(t)));
    return new DrainRun(this.parts, this.executor, this.settler, options, foreign).run();
  }

  /**
   * Claims the named members now, if they are pending, and recomputes them in this process
   * through the same leases and acknowledgements as a drain (never alongside another worker).
   * Members held by another worker, or not pending, are left alone (counted as lost races).
   */
  async recomputeNow(members: readonly string[]): Promise<DrainResult> {
    const { registry, claims, clock, keeper, settings } = this.parts;
    const result = emptyResult();
    const candidates = members.map((m) => ({ key: Buffer.from(m), score: '' }));
    const kinds = candidates.map((c) => registry.classify(c.key)).filter((k) => k.kind !== 'foreign');
    if (kinds.length < candidates.length) throw new Error('recomputeNow(): only members of registered parent types');
    const since = keeper.now();
    const { token, won } = await claims.claim(candidates, clock.now() + settings.leaseMs);
    result.claimed = won.length;
    result.lostRaces = candidates.length - won.length;
    const claimed = claimedOf(candidates, kinds as Claimed['what'][], token, won);
    keeper.hold(
      claimed.map((c) => c.claim),
      since,
    );
    const acks = new AckBuffer({ ...this.parts, batch: DEFAULT_WINDOW, totals: result });
    const round: Round = { result, acks, chained: new Set() };
    const tasks = await tasksOf(this.parts, this.settler, claimed, round);
    await Promise.all(tasks.map((t) => this.executor.run(t, round)));
    await acks.settle();
    return result;
  }

  /**
   * Stops the recomputes running now (a shutdown that will not wait for them longer): their
   * signals are aborted with a StoppingError, and each one that stops within `waitMs` gives its
   * parents back to pending at once. One that ignores its signal keeps its parents until it
   * ends, or until its leases expire once this process is gone: a parent is never handed to
   * another worker while its recompute may still write. Returns how many parents went back.
   */
  async releaseInflight(waitMs = 1_000): Promise<number> {
    const { keeper, logger } = this.parts;
    const running = [...this.executor.running];
    if (running.length === 0) return 0;
    const before = running.flatMap((r) => r.claims);
    for (const r of running) r.ctx.abort(new StoppingError(r.claims[0]?.member ?? 'parent'));
    const until = performance.now() + waitMs;
    while (performance.now() < until && running.some((r) => this.executor.running.has(r))) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // What still runs stops being renewed: after its lease, the parent is another worker's.
    const stuck = running.filter((r) => this.executor.running.has(r)).flatMap((r) => r.claims);
    for (const c of stuck) keeper.drop(c);
    if (stuck.length > 0) {
      logger.warn(
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
    await this.parts.invoker.close(maxWaitMs);
    this.parts.keeper.stop();
  }
}
