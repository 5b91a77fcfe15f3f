import { errorMessage } from '../errors';
import { runAsRecompute } from '../recompute-scope';
import type { ParentId, ParentType } from '../registry/model';
import { LazyContext } from './context';
import type { Outcome } from './invoke';
import type { Claim } from './leases';
import type { DrainParts, Round } from './parts';
import type { Item, Settler } from './settle';
import type { Task } from './tasks';
import type { DrainResult } from './types';

/** A recompute call running now, so a shutdown can abort it. */
export interface Running {
  readonly ctx: LazyContext;
  readonly claims: readonly Claim[];
}

/** Runs tasks: checks their leases, calls the recomputes under them, and hands the outcomes to the settler. */
export class Executor {
  /** Recompute calls running now, in any drain of this drainer. */
  readonly running = new Set<Running>();

  constructor(
    private readonly parts: DrainParts,
    private readonly settler: Settler,
  ) {}

  /** Runs one task; never throws. Returns its ms per parent (real time), or undefined when nothing ran. */
  async run(task: Task, round: Round): Promise<number | undefined> {
    const timer = performance.now();
    const { parent } = task;
    const live = await this.startable(task.items, round.result);
    if (live.length === 0) return undefined;
    if (parent.recomputeMany && (live.length > 1 || !parent.recompute)) {
      const many = parent.recomputeMany;
      const started = this.parts.clock.now();
      const outcome = await this.call(parent, live, (ids, ctx) => many(ids, ctx));
      if (outcome.kind === 'error' && parent.recompute) {
        this.parts.logger.warn(
          { parent: parent.name, ids: live.map((i) => i.id), err: errorMessage(outcome.error) },
          'recomputeMany failed; recomputing one by one',
        );
        await this.runEach(parent, live, round);
      } else {
        await this.settler.settle(parent, live, outcome, started, round);
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
      const started = this.parts.clock.now();
      const outcome = await this.call(parent, [live], ([id], ctx) => recompute(id as ParentId, ctx));
      await this.settler.settle(parent, [live], outcome, started, round);
    }
  }

  /**
   * The items whose lease is still owned with a safe margin; the others are given back (a lease
   * that ran short) or left (a lease already lost), never started.
   */
  private async startable(items: readonly Item[], result: DrainResult): Promise<readonly Item[]> {
    const { keeper, logger } = this.parts;
    if (items.every((i) => keeper.valid(i.claim))) return items;
    const live = items.filter((i) => keeper.valid(i.claim));
    const stale = items.filter((i) => !live.includes(i)).map((i) => i.claim);
    result.released += await this.settler.release(stale.filter((c) => !keeper.lost(c))).catch((error: unknown) => {
      logger.warn(
        { err: errorMessage(error), members: stale.map((c) => c.member) },
        'could not give back claims whose lease ran short; their leases will expire',
      );
      return 0;
    });
    for (const c of stale) keeper.drop(c);
    return live;
  }

  /** Calls a recompute with its context; a lost lease aborts its signal. */
  private async call(
    parent: ParentType,
    items: readonly Item[],
    fn: (ids: ParentId[], ctx: LazyContext) => Promise<void>,
  ): Promise<Outcome> {
    const { keeper, invoker, hooks, dataSource, logger } = this.parts;
    const ids = items.map((i) => i.id);
    const claims = items.map((i) => i.claim);
    const first = claims[0] as Claim;
    const ctx = new LazyContext(
      dataSource,
      logger,
      parent.name,
      ids,
      Math.max(...claims.map((c) => c.attempts)),
      Number(first.token),
    );
    const running: Running = { ctx, claims };
    for (const c of claims) keeper.watch(c, (reason) => ctx.abort(reason));
    this.running.add(running);
    try {
      return await invoker.invoke(
        ctx,
        // The recompute's own writes are not a host's: capture knows them by this scope.
        hooks.scoped?.() ? () => runAsRecompute(() => fn(ids, ctx)) : () => fn(ids, ctx),
        first.member,
        () => claims.map((c) => ({ member: c.member, increment: 1, base: parent.base })),
      );
    } finally {
      this.running.delete(running);
      for (const c of claims) keeper.unwatch(c);
    }
  }
}
