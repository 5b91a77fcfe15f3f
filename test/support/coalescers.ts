import type { DataSource } from 'typeorm';
import { Coalescer, type CoalescerOptions } from '../../src';
import type { Parts } from '../../src/assemble';
import { Claims } from '../../src/redis/claims';
import { Order, OrderLine } from '../../examples/shop/entities';
import { recomputeOrders } from '../../examples/shop/recompute';
import { redisUrl, suffix, testLogger } from './db';

// Coalescers of the suite: the shop's, built the same way everywhere, a way below the facade,
// and the claims a crashed worker leaves behind.

/** Counts of recomputes per order id, for the "exactly once" guarantees. */
export class RecomputeLog {
  readonly counts = new Map<number, number>();
  total = 0;
  record(ids: readonly number[]): void {
    for (const id of ids) {
      this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
      this.total += 1;
    }
  }
  of(id: number): number {
    return this.counts.get(id) ?? 0;
  }
}

/**
 * A Coalescer for the shop entities on a fresh namespace, recording every recompute. Pass
 * `recompute` to wrap the real one (delays, failures).
 */
export function shopCoalescer(
  dataSource: DataSource,
  options: Partial<CoalescerOptions> & {
    log?: RecomputeLog;
    many?: boolean;
    before?: (ids: readonly number[]) => Promise<void> | void;
  } = {},
): Coalescer {
  const { log, many, before, ...rest } = options;
  const coalescer = new Coalescer({
    dataSource,
    redis: redisUrl(),
    namespace: `test-${suffix()}`,
    logger: testLogger(),
    ...rest,
  });
  const run = async (ids: number[], manager: DataSource['manager']): Promise<void> => {
    await before?.(ids);
    await recomputeOrders(manager, ids);
    log?.record(ids);
  };
  coalescer.parent<number>(Order, {
    recompute: (id, { manager }) => run([id], manager),
    ...(many ? { recomputeMany: (ids: number[], { manager }: { manager: DataSource['manager'] }) => run(ids, manager) } : {}),
  });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  return coalescer;
}

/** The parts a coalescer was built from (its Redis slices, drainer...), for tests that reach below the facade. */
export function internals(coalescer: Coalescer): Parts {
  return (coalescer as unknown as { parts: Parts }).parts;
}

/** Closes a coalescer after deleting every key of its namespace. */
export async function dispose(coalescer: Coalescer): Promise<void> {
  await internals(coalescer).epochs.clear();
  await coalescer.close();
}

/** Disposes every coalescer in `list` (see {@link dispose}); for afterAll. */
export async function disposeAll(list: readonly Coalescer[]): Promise<void> {
  for (const c of list) await dispose(c);
}

/** A claim taken by {@link crashedClaims}: what a worker that died before its ack leaves behind. */
export interface CrashedClaim {
  key: Buffer;
  member: string;
  token: string;
}

/**
 * Claims the `n` hottest parents the way a worker does, then never renews nor acknowledges them
 * (a worker killed mid-recompute). Their leases expire after `leaseMs`.
 */
export async function crashedClaims(coalescer: Coalescer, n: number, leaseMs: number): Promise<CrashedClaim[]> {
  await coalescer.clock.sync();
  const claims = new Claims({ client: internals(coalescer).clients.main, keys: coalescer.keys });
  const { top } = await claims.readWindow(coalescer.clock.now(), n, 0);
  const { token, won } = await claims.claim(top, coalescer.clock.now() + leaseMs);
  return won.map((w) => {
    const key = (top[w.index] as { key: Buffer }).key;
    return { key, member: key.toString(), token };
  });
}
