import type { EntityTarget, ObjectLiteral } from 'typeorm';
import { CoalesceError, type Coalescer, type VerifyOptions, type VerifyResult } from '../index';
import { showValue as show } from '../verify/show';

/** Some parents' stored derived fields differ from what their children say. */
export class DriftError extends CoalesceError {
  constructor(
    message: string,
    /** One verify result per parent type checked. */
    readonly results: readonly VerifyResult[],
  ) {
    super(message);
  }
}

/**
 * Checks that every row of each parent type holds what its aggregates (or its `expected`)
 * compute from its children, with `coalescer.verify()`; rejects with a {@link DriftError}
 * listing the first differences. Run it after {@link drainUntilIdle}: parents with a recompute
 * still coming are skipped by verify, not reported. Resolves with the verify results.
 *
 * @example
 * ```ts
 * await drainUntilIdle(coalescer, { timeoutMs: 10_000 });
 * await assertNoDrift(coalescer, [Order, Customer]);
 * ```
 */
export async function assertNoDrift(
  coalescer: Coalescer,
  parents: readonly (EntityTarget<ObjectLiteral> | string)[],
  options: Pick<VerifyOptions, 'ids' | 'batch'> = {},
): Promise<VerifyResult[]> {
  const results: VerifyResult[] = [];
  for (const parent of parents) results.push(await coalescer.verify(parent, options));
  const drifted = results.filter((r) => r.drifted > 0);
  if (drifted.length > 0) {
    const lines = drifted.flatMap((r) =>
      r.examples
        .slice(0, 5)
        .map((e) => `${r.parent} ${String(e.id)}.${e.field}: stored ${show(e.stored)}, expected ${show(e.expected)}`),
    );
    const counts = drifted.map((r) => `${r.drifted} ${r.parent}`).join(', ');
    throw new DriftError(`assertNoDrift: drifted parents (${counts}): ${lines.join('; ')}`, results);
  }
  return results;
}
