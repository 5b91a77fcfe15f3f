import type { Coalescer, CoalescerStats } from '../coalescer';
import { PRIORITY_BASE, heatOf, type Priority } from '../redis/score';
import type { RunnerCounts, RunnerStatus } from '../runner/runner';
import type { ResolvedDashboardOptions } from './options';

/** The figures of one `stats()` sample, kept for the plots. */
export interface Sample {
  /** Ms when it was taken. */
  readonly at: number;
  readonly pending: number;
  readonly inflight: number;
  readonly delayed: number;
  readonly dead: number;
  readonly settling: number;
  readonly overdue: number;
  readonly expired: number;
  readonly outbox: number | null;
  readonly oldestPendingMs: number | null;
  readonly waitP50Ms: number | null;
  readonly waitP99Ms: number | null;
}

/** A sample that could not be taken (Redis or the database did not answer). */
export interface FailedSample {
  readonly at: number;
  readonly error: string;
}

/** A point of the plots: figures, or why there are none at that time. */
export type SamplePoint = Sample | FailedSample;

/** Pending parents of one type. */
export interface TypeFigure {
  readonly name: string;
  /** Undefined for a type found in Redis that this process has not registered. */
  readonly priority: Priority | undefined;
  readonly pending: number;
}

/** A dead parent as the page lists it. */
export interface DeadFigure {
  readonly member: string;
  readonly error: string;
  readonly attempts: number;
  readonly heat: number;
  /** Ms when it was dead-lettered. */
  readonly at: number;
}

/** Everything the page shows, as `GET /api/state` returns it. */
export interface DashboardState {
  readonly namespace: string;
  /** Ms when it was read. */
  readonly at: number;
  readonly stats: Omit<CoalescerStats, 'marker'>;
  /** Pending parents per priority tier, highest tier first (exact). */
  readonly tiers: readonly { readonly priority: Priority; readonly pending: number }[];
  /** Pending parents per type, registered types first; from a bounded scan, see `typeScan`. */
  readonly types: readonly TypeFigure[];
  /** How the per-type counts were taken: every pending member (`exact`) or `scanned` of `total`. */
  readonly typeScan: { readonly scanned: number; readonly total: number; readonly exact: boolean };
  readonly hottest: readonly { readonly member: string; readonly heat: number; readonly priority: Priority }[];
  /** The oldest dead parents (up to `deadLimit`); `stats.dead` is their total. */
  readonly dead: readonly DeadFigure[];
  /** The runner of this process, when one was given. */
  readonly runner: { readonly status: RunnerStatus; readonly counts: Readonly<RunnerCounts> } | null;
  readonly sampleMs: number;
  readonly historyMs: number;
}

/** Tiers from the highest base down, with the score range each one covers. */
const TIERS = (Object.entries(PRIORITY_BASE) as [Priority, number][]).sort((a, b) => b[1] - a[1]);
const TIER_RANGES = TIERS.map(([, base], i): [number, number] => [base, i === 0 ? Infinity : (TIERS[i - 1]?.[1] ?? Infinity)]);

/** Priority tier of a pending score. */
export function tierOf(score: number): Priority {
  return (TIERS.find(([, base]) => score >= base) ?? TIERS[TIERS.length - 1])?.[0] ?? 'low';
}

function priorityOfBase(base: number): Priority | undefined {
  return TIERS.find(([, b]) => b === base)?.[0];
}

/** The plotted figures of `stats`. */
export function sampleOf(stats: CoalescerStats, at: number): Sample {
  return {
    at,
    pending: stats.pending,
    inflight: stats.inflight,
    delayed: stats.delayed,
    dead: stats.dead,
    settling: stats.settling,
    overdue: stats.overdue,
    expired: stats.expired,
    outbox: stats.outbox,
    oldestPendingMs: stats.oldestPendingMs,
    waitP50Ms: stats.wait.p50Ms,
    waitP99Ms: stats.wait.p99Ms,
  };
}

/** Reads everything the page shows; `stats` may be given when it was just read. */
export async function readState(
  coalescer: Coalescer,
  options: ResolvedDashboardOptions,
  stats?: CoalescerStats,
): Promise<DashboardState> {
  const store = coalescer.reads;
  const [s, tierCounts, scan, top, dead] = await Promise.all([
    stats ?? coalescer.stats(),
    store.pendingInRanges(TIER_RANGES),
    store.pendingByType(options.typeScanLimit),
    store.top(options.top),
    coalescer.dead.list({ limit: options.deadLimit }),
  ]);
  const { marker: _marker, ...rest } = s;
  const registered = coalescer.registry.parentTypes();
  const types: TypeFigure[] = registered.map((t) => ({
    name: t.name,
    priority: priorityOfBase(t.base),
    pending: scan.byType[t.name] ?? 0,
  }));
  // Members of types this process does not register (another app, or malformed ones) count too.
  for (const [name, pending] of Object.entries(scan.byType)) {
    if (!registered.some((t) => t.name === name)) types.push({ name, priority: undefined, pending });
  }
  const runner = options.runner;
  return {
    namespace: coalescer.namespace,
    at: coalescer.options.clock(),
    stats: rest,
    tiers: TIERS.map(([priority], i) => ({ priority, pending: tierCounts[i] ?? 0 })),
    types,
    typeScan: { scanned: scan.scanned, total: scan.total, exact: scan.exact },
    hottest: top.map(({ member, score }) => ({ member, heat: heatOf(score), priority: tierOf(score) })),
    dead: dead.map((d) => ({ member: d.member, error: d.error, attempts: d.attempts, heat: heatOf(d.score), at: d.at })),
    runner: runner ? { status: runner.status, counts: { ...runner.counts } } : null,
    sampleMs: options.sampleMs,
    historyMs: options.historyMs,
  };
}
