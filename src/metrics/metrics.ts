import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Coalescer, CoalescerStats } from '../coalescer';
import type { DrainResult, FailedEvent, RecomputedEvent } from '../drain/drainer';
import type { Runner, TickEvent } from '../runner/runner';
import type { Housework } from '../ops/housekeeper';
import type { VerifyResult } from '../verify/verifier';
import { errorMessage } from '../errors';

/** Options of {@link coalescerMetrics}. */
export interface MetricsOptions {
  /** The runner whose ticks are timed and whose skipped ticks are counted. */
  runner?: Runner;
  /**
   * Registry to register the metrics on, e.g. the host's own.
   * @defaultValue a new Registry (never prom-client's global one)
   */
  registry?: Registry;
}

/** The coalescer's metrics on a prom-client registry. */
export interface CoalescerMetrics {
  readonly registry: Registry;
  /** Stops counting (removes the event listeners); the registry keeps its last values. */
  close(): void;
}

/** A running Prometheus endpoint. */
export interface MetricsServer {
  /** The port it listens on (useful when 0 was asked for). */
  readonly port: number;
  readonly host: string;
  readonly registry: Registry;
  /** Stops counting and closes the HTTP server. */
  close(): Promise<void>;
}

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];
const TICK_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 5, 30];

/**
 * Registers the coalescer's figures as Prometheus metrics: the sizes of its sets and its lag,
 * read from Redis once per scrape (`coalesce_up` is 0 when Redis did not answer; the other
 * gauges then keep their last values), and what this process did, counted from its events:
 * recomputes and failures by parent type, recompute durations, lost races, runner ticks, and
 * the parents checked and found drifted by `verify()`.
 */
export function coalescerMetrics(coalescer: Coalescer, options: MetricsOptions = {}): CoalescerMetrics {
  const registry = options.registry ?? new Registry();
  const { runner } = options;

  // One stats() per scrape, shared by every gauge: prom-client calls their collect() together.
  let snapshot: Promise<CoalescerStats | undefined> | undefined;
  const read = (): Promise<CoalescerStats | undefined> => {
    snapshot ??= coalescer
      .stats()
      .catch((error: unknown) => {
        coalescer.logger.debug({ err: errorMessage(error) }, 'metrics: stats unavailable');
        return undefined;
      })
      .finally(() => (snapshot = undefined));
    return snapshot;
  };
  new Gauge({
    name: 'coalesce_up',
    help: '1 when Redis answered the last scrape, else 0 (the other gauges then keep their last values).',
    registers: [registry],
    async collect() {
      this.set((await read()) ? 1 : 0);
    },
  });
  const stat = (name: string, help: string, value: (s: CoalescerStats) => number | null) =>
    new Gauge({
      name: `coalesce_${name}`,
      help,
      registers: [registry],
      async collect() {
        const s = await read();
        const v = s && value(s);
        if (v !== undefined && v !== null) this.set(v);
      },
    });
  stat('pending', 'Parents waiting to be recomputed.', (s) => s.pending);
  stat('inflight', 'Parents claimed by a worker right now.', (s) => s.inflight);
  stat('delayed', 'Failed parents waiting for their retry.', (s) => s.delayed);
  stat('dead', 'Dead-lettered parents.', (s) => s.dead);
  stat('settling', 'Parents in their quiet period (settleMs).', (s) => s.settling);
  stat('overdue', 'Parents waiting longer than their maxWaitMs.', (s) => s.overdue);
  stat('expired_leases', 'Leases past their deadline not yet given back.', (s) => s.expired);
  stat(
    'outbox',
    'Rows of the outbox table: marks not yet in Redis, or kept until their parents are recomputed.',
    (s) => s.outbox,
  );
  stat('oldest_pending_seconds', 'Age of the oldest first mark among parents waiting (0 when none waits).', (s) =>
    s.oldestPendingMs === null ? 0 : s.oldestPendingMs / 1000,
  );
  stat('wait_p50_seconds', 'Median wait from first mark to recompute start, last 1000 recomputes.', (s) =>
    s.wait.p50Ms === null ? null : s.wait.p50Ms / 1000,
  );
  stat('wait_p99_seconds', '99th percentile wait from first mark to recompute start, last 1000 recomputes.', (s) =>
    s.wait.p99Ms === null ? null : s.wait.p99Ms / 1000,
  );

  const recomputes = new Counter({
    name: 'coalesce_recomputes_total',
    help: 'Parents recomputed by this process.',
    labelNames: ['parent'],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'coalesce_failures_total',
    help: 'Failed recomputes in this process; dead="true" when the parent was dead-lettered.',
    labelNames: ['parent', 'dead'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'coalesce_recompute_duration_seconds',
    help: 'Time one recompute took.',
    labelNames: ['parent'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const lostRaces = new Counter({
    name: 'coalesce_lost_races_total',
    help: 'Members read at the top of the set that another worker claimed first.',
    registers: [registry],
  });
  const ticks = new Histogram({
    name: 'coalesce_tick_duration_seconds',
    help: 'Time one runner tick took (failed ticks included).',
    buckets: TICK_BUCKETS,
    registers: [registry],
  });
  // Read from the runner's counts at each scrape: a skipped tick emits no event.
  const fromRunner = (name: string, help: string, field: 'skipped' | 'failed' | 'missed') => {
    let seen = 0;
    return new Counter({
      name: `coalesce_ticks_${name}_total`,
      help,
      registers: [registry],
      collect() {
        const now = runner?.counts[field] ?? 0;
        if (now > seen) this.inc(now - seen);
        seen = now;
      },
    });
  };
  fromRunner('skipped', 'Runner ticks skipped because the previous one was still running.', 'skipped');
  fromRunner('failed', 'Runner ticks whose drain threw (Redis or PostgreSQL unreachable).', 'failed');
  fromRunner('missed', 'Runner ticks node-cron could not fire on time (blocked event loop).', 'missed');

  const drift = new Counter({
    name: 'coalesce_drift_total',
    help: 'Parents found drifted by verify() in this process (stored derived fields differ from their children).',
    labelNames: ['parent'],
    registers: [registry],
  });
  const verifyChecked = new Counter({
    name: 'coalesce_verify_checked_total',
    help: 'Parents compared by verify() in this process.',
    registers: [registry],
  });

  const onRecomputed = (e: RecomputedEvent): void => {
    recomputes.inc({ parent: e.parent });
    duration.observe({ parent: e.parent }, e.durationMs / 1000);
  };
  const onFailed = (e: FailedEvent): void => failures.inc({ parent: e.parent ?? 'unknown', dead: String(e.dead) });
  const superseded = new Counter({
    name: 'coalesce_superseded_total',
    help: 'Acks and failures of claims whose lease had passed on: each marked its parent once more.',
    registers: [registry],
  });
  const losses = new Counter({
    name: 'coalesce_redis_losses_total',
    help: "Times this process found that Redis had lost the namespace's data (its epoch was gone).",
    registers: [registry],
  });
  const rebuilt = new Counter({
    name: 'coalesce_rebuild_marked_total',
    help: 'Parents marked by the rebuild that follows a Redis data loss.',
    registers: [registry],
  });
  const relayed = new Counter({
    name: 'coalesce_outbox_relayed_total',
    help: 'Marks relayed from the outbox table to Redis.',
    registers: [registry],
  });
  const onDrained = (r: DrainResult): void => {
    lostRaces.inc(r.lostRaces);
    superseded.inc(r.superseded);
  };
  const onHousework = (w: Housework): void => {
    if (w.redisLost) losses.inc();
    rebuilt.inc(w.rebuilt);
    relayed.inc(w.relayed);
  };
  const onTick = (t: TickEvent): void => ticks.observe(t.durationMs / 1000);
  const onVerified = (r: VerifyResult): void => {
    drift.inc({ parent: r.parent }, r.drifted);
    verifyChecked.inc(r.checked);
  };
  coalescer.on('recomputed', onRecomputed);
  coalescer.on('failed', onFailed);
  coalescer.on('drained', onDrained);
  coalescer.on('housework', onHousework);
  coalescer.on('verified', onVerified);
  runner?.on('tick', onTick);

  return {
    registry,
    close() {
      coalescer.off('recomputed', onRecomputed);
      coalescer.off('failed', onFailed);
      coalescer.off('drained', onDrained);
      coalescer.off('housework', onHousework);
      coalescer.off('verified', onVerified);
      runner?.off('tick', onTick);
    },
  };
}

/**
 * Serves the coalescer's metrics (see {@link coalescerMetrics}) at `http://host:port/metrics`
 * in Prometheus' text format, on a registry of its own. Port 0 picks a free port.
 */
export async function serveMetrics(
  coalescer: Coalescer,
  runner: Runner | undefined,
  port: number,
  host = '127.0.0.1',
): Promise<MetricsServer> {
  const metrics = coalescerMetrics(coalescer, runner ? { runner } : {});
  const { registry } = metrics;
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics unavailable: ${errorMessage(err)}\n`),
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (error) {
    metrics.close();
    throw error;
  }
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    host,
    registry,
    async close() {
      metrics.close();
      // Scrapers keep connections alive; a stop must not wait for them.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
