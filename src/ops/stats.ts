import type { Reads } from '../redis/reads';
import type { ServerClock } from '../redis/clock';
import { heatOf } from '../redis/score';
import type { Outbox } from '../delivery/outbox';
import type { MarkerStats } from '../delivery/marker';
import { onRedis, type RedisSite } from '../errors';

/** Sizes and ages of one namespace. */
export interface CoalescerStats {
  /** Parents waiting to be recomputed. */
  pending: number;
  /** Parents claimed by a worker right now. */
  inflight: number;
  /** Failed parents waiting for their retry. */
  delayed: number;
  /** Dead-lettered parents. */
  dead: number;
  /** Leases past their deadline not yet given back (a crashed or stuck worker). */
  expired: number;
  /** Parents in their quiet period (settleMs), not claimable yet. */
  settling: number;
  /** Parents waiting longer than their maxWaitMs, claimed first by the next drain. */
  overdue: number;
  /** Age in ms of the oldest first mark among parents waiting for a recompute, or null when none waits. */
  oldestPendingMs: number | null;
  /** Wait from first mark to recompute start over the last (up to 1000) recomputes, in ms. */
  wait: { samples: number; p50Ms: number | null; p99Ms: number | null };
  /** Marks kept in the outbox table: not yet in Redis, or kept until recomputed (null when the table is missing). */
  outbox: number | null;
  /** What this process's marker sent. */
  marker: Readonly<MarkerStats>;
}

/** A pending parent with its heat. */
export interface HotParent {
  member: string;
  heat: number;
}

/** What stats need. */
export interface StatsOptions {
  readonly reads: Pick<Reads, 'counts' | 'recentWaits' | 'top'>;
  readonly clock: ServerClock;
  readonly outbox: Pick<Outbox, 'size'>;
  readonly marker: { readonly stats: Readonly<MarkerStats> };
  /** Where Redis is, and why it last could not be reached, for messages. */
  readonly redis: RedisSite;
}

/** Sizes, ages and lag of a namespace, and its hottest parents. */
export class Stats {
  constructor(private readonly options: StatsOptions) {}

  /** Sizes of the namespace's sets and the age of the oldest pending mark. */
  async stats(): Promise<CoalescerStats> {
    const { reads, clock, outbox, marker, redis } = this.options;
    await clock.sync().catch(() => undefined);
    const now = clock.now();
    const [[c, waits], kept] = await Promise.all([
      onRedis('stats()', redis, Promise.all([reads.counts(now), reads.recentWaits()])),
      outbox.size().catch(() => null),
    ]);
    return {
      pending: c.pending,
      inflight: c.inflight,
      delayed: c.delayed,
      dead: c.dead,
      expired: c.expired,
      settling: c.settling,
      overdue: c.overdue,
      oldestPendingMs: c.oldestSince === undefined ? null : Math.max(0, now - c.oldestSince),
      wait: { samples: waits.length, p50Ms: percentile(waits, 0.5), p99Ms: percentile(waits, 0.99) },
      outbox: kept,
      marker: { ...marker.stats },
    };
  }

  /** The `n` hottest pending parents. */
  async hottest(n = 10): Promise<HotParent[]> {
    const top = await onRedis('hottest()', this.options.redis, this.options.reads.top(n));
    return top.map(({ member, score }) => ({ member, heat: heatOf(score) }));
  }
}

/** The `q` quantile of `values` (nearest rank), or null when there are none. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}
