import type { EntityManager } from 'typeorm';
import type { CompiledAggregates } from '../aggregates/compile';
import type { ParentId, ParentOptions, RecomputeContext } from './model';

type Recompute = NonNullable<ParentOptions['recompute']>;
type RecomputeMany = NonNullable<ParentOptions['recomputeMany']>;

/** The same context with another manager (the transaction's); signal and logger stay lazy. */
function inTransaction(ctx: RecomputeContext, manager: EntityManager): RecomputeContext {
  return {
    manager,
    attempt: ctx.attempt,
    fence: ctx.fence,
    get signal() {
      return ctx.signal;
    },
    get logger() {
      return ctx.logger;
    },
  };
}

/**
 * The recompute functions of a parent with declared aggregates: the compiled statement alone,
 * or, when the host gives its own recompute(s) too, both in one transaction, aggregates first
 * (so the host's code sees the fresh derived fields, and a failure of either rolls back both).
 */
export function recomputeWithAggregates(
  aggregates: CompiledAggregates,
  own: Pick<ParentOptions, 'recompute' | 'recomputeMany'>,
): { recompute: Recompute; recomputeMany: RecomputeMany } {
  const { recompute, recomputeMany } = own;
  if (!recompute && !recomputeMany) {
    return {
      recompute: (id, ctx) => aggregates.update(ctx.manager, [id]),
      recomputeMany: (ids, ctx) => aggregates.update(ctx.manager, ids),
    };
  }
  const both = (ids: ParentId[], ctx: RecomputeContext, then: (m: EntityManager, c: RecomputeContext) => Promise<void>) =>
    ctx.manager.transaction(async (manager) => {
      await aggregates.update(manager, ids);
      await then(manager, inTransaction(ctx, manager));
    });
  const one: Recompute = recompute
    ? (id, ctx) => both([id], ctx, (_m, c) => recompute(id, c))
    : (id, ctx) => both([id], ctx, (_m, c) => (recomputeMany as RecomputeMany)([id], c));
  const many: RecomputeMany = recomputeMany
    ? (ids, ctx) => both(ids, ctx, (_m, c) => recomputeMany(ids, c))
    : (ids, ctx) =>
        both(ids, ctx, async (_m, c) => {
          // The host recomputes one parent at a time; the aggregates still go in one statement.
          for (const id of ids) await (recompute as Recompute)(id, c);
        });
  return { recompute: one, recomputeMany: many };
}
