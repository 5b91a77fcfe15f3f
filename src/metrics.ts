import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Coalescer } from './coalescer';
import type { Runner } from './runner/runner';

/** A running Prometheus endpoint. */
export interface MetricsServer {
  /** The port it listens on (useful when 0 was asked for). */
  readonly port: number;
  readonly registry: Registry;
  close(): Promise<void>;
}

/**
 * Serves the coalescer's figures at `http://host:port/metrics` in Prometheus' text format, on
 * a registry of its own: set sizes and lag read from Redis at each scrape; recomputes,
 * failures, durations, ticks and lost races counted from the events of this process.
 */
export async function serveMetrics(
  coalescer: Coalescer,
  runner: Runner | undefined,
  port: number,
  host = '127.0.0.1',
): Promise<MetricsServer> {
  const registry = new Registry();
  const stat = (name: string, help: string, read: (s: Awaited<ReturnType<Coalescer['stats']>>) => number | null) =>
    new Gauge({
      name: `coalesce_${name}`,
      help,
      registers: [registry],
      async collect() {
        const value = read(await coalescer.stats());
        if (value !== null) this.set(value);
      },
    });
  stat('pending', 'Parents waiting to be recomputed.', (s) => s.pending);
  stat('inflight', 'Parents claimed by a worker right now.', (s) => s.inflight);
  stat('delayed', 'Failed parents waiting for their retry.', (s) => s.delayed);
  stat('dead', 'Dead-lettered parents.', (s) => s.dead);
  stat('settling', 'Parents in their quiet period (settleMs).', (s) => s.settling);
  stat('overdue', 'Parents waiting longer than their maxWaitMs.', (s) => s.overdue);
  stat('expired_leases', 'Leases past their deadline not yet given back.', (s) => s.expired);
  stat('oldest_pending_seconds', 'Age of the oldest first mark among parents waiting.', (s) =>
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
    help: 'Parents recomputed.',
    labelNames: ['parent'],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'coalesce_failures_total',
    help: 'Failed recomputes.',
    labelNames: ['parent', 'dead'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'coalesce_recompute_duration_seconds',
    help: 'Time one recompute took.',
    labelNames: ['parent'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  const ticks = new Histogram({
    name: 'coalesce_tick_duration_seconds',
    help: 'Time one runner tick took.',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  const lostRaces = new Counter({
    name: 'coalesce_lost_races_total',
    help: 'Claims lost to another worker.',
    registers: [registry],
  });
  const skipped = new Counter({
    name: 'coalesce_ticks_skipped_total',
    help: 'Ticks skipped because one was running.',
    registers: [registry],
  });

  const onRecomputed = (e: { parent: string; durationMs: number }) => {
    recomputes.inc({ parent: e.parent });
    duration.observe({ parent: e.parent }, e.durationMs / 1000);
  };
  const onFailed = (e: { parent: string | undefined; dead: boolean }) =>
    failures.inc({ parent: e.parent ?? 'unknown', dead: String(e.dead) });
  let skippedSeen = 0;
  const onTick = (t: { durationMs: number; result?: { lostRaces: number } | undefined }) => {
    ticks.observe(t.durationMs / 1000);
    if (t.result) lostRaces.inc(t.result.lostRaces);
    if (runner && runner.counts.skipped > skippedSeen) {
      skipped.inc(runner.counts.skipped - skippedSeen);
      skippedSeen = runner.counts.skipped;
    }
  };
  coalescer.on('recomputed', onRecomputed);
  coalescer.on('failed', onFailed);
  runner?.on('tick', onTick);

  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(`metrics unavailable: ${(err as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    registry,
    async close() {
      coalescer.off('recomputed', onRecomputed);
      coalescer.off('failed', onFailed);
      runner?.off('tick', onTick);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
