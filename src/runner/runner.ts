import { EventEmitter } from 'node:events';
import cron, { type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import type { CoalesceLogger as Logger } from '../log';
import { z } from 'zod';
import { configError } from '../config';
import { ConfigError, errorMessage } from '../errors';
import type { DrainOptions, DrainResult, FailedEvent, RecomputedEvent } from '../drain/drainer';

/** Options of a {@link Runner}. */
export interface RunnerOptions {
  /**
   * node-cron expression (five fields, or six with seconds first) of the ticks.
   * @defaultValue '* * * * * *' (every second)
   */
  schedule?: string;
  /**
   * Recomputes run at once during a tick.
   * @defaultValue 4
   */
  concurrency?: number;
  /**
   * Most parents claimed per tick.
   * @defaultValue 10000
   */
  maxPerTick?: number;
  /**
   * A tick stops claiming after this many ms (work in flight finishes).
   * @defaultValue 4000
   */
  maxTickMs?: number;
  /**
   * How long `stop()` waits for recomputes in flight before it gives their parents back to pending.
   * @defaultValue 30000
   */
  stopTimeoutMs?: number;
}

/** Lifecycle of a runner. */
export type RunnerStatus = 'idle' | 'running' | 'stopping' | 'stopped';

/** Emitted after each tick that ran (a skipped tick emits nothing but is counted in `counts`). */
export interface TickEvent {
  /** What the tick's drain did; undefined when it failed. */
  result: DrainResult | undefined;
  /** Why the tick failed (Redis or PostgreSQL unreachable...); it is logged, never thrown. */
  error: unknown;
  durationMs: number;
}

/** Events a runner emits. */
export interface RunnerEvents {
  tick: [TickEvent];
  recomputed: [RecomputedEvent];
  failed: [FailedEvent];
}

/** What the runner needs of a coalescer. */
export interface Drainable {
  readonly logger: Logger;
  /** Name of this process's worker, bound to the runner's log lines. */
  readonly worker: string;
  drain(options: DrainOptions): Promise<DrainResult>;
  releaseInflight(): Promise<number>;
  on(event: 'recomputed', listener: (e: RecomputedEvent) => void): unknown;
  on(event: 'failed', listener: (e: FailedEvent) => void): unknown;
  off(event: 'recomputed', listener: (e: RecomputedEvent) => void): unknown;
  off(event: 'failed', listener: (e: FailedEvent) => void): unknown;
}

/** Defaults of every runner option. */
export const RUNNER_DEFAULTS = Object.freeze({
  schedule: '* * * * * *',
  concurrency: 4,
  maxPerTick: 10_000,
  maxTickMs: 4_000,
  stopTimeoutMs: 30_000,
});

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const schema = z.object({
  schedule: z.string(),
  concurrency: int(1, 1024),
  maxPerTick: int(1, 10_000_000),
  maxTickMs: int(1, 86_400_000),
  stopTimeoutMs: int(0, 86_400_000),
});

/** Validates runner options; a bad cron expression throws a ConfigError that quotes it. */
export function resolveRunnerOptions(options: RunnerOptions): Readonly<Required<RunnerOptions>> {
  const input = { ...RUNNER_DEFAULTS, ...options };
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw configError(parsed.error, input, 'runner option');
  const check = cron.validateDetailed(parsed.data.schedule);
  if (!check.valid) {
    const why = check.errors.map((e) => `${e.field}: ${e.message}`).join('; ');
    throw new ConfigError(
      `invalid runner option "schedule" = ${JSON.stringify(parsed.data.schedule)}: not a cron expression (${why || 'expected 5 or 6 fields'})`,
    );
  }
  return Object.freeze(parsed.data);
}

/** What a runner has done since it was made. */
export interface RunnerCounts {
  /** Ticks run (failed ones included). */
  ticks: number;
  /** Ticks due while the previous one was still running: skipped, never run alongside it. */
  skipped: number;
  /** Ticks whose drain threw (Redis or PostgreSQL unreachable...). */
  failed: number;
  /** Ticks node-cron could not fire on time (the event loop was blocked past its tolerance). */
  missed: number;
}

/**
 * Drains a coalescer on a node-cron schedule. Ticks never overlap in one process (a tick due
 * while one runs is skipped and counted); several runners, in several processes, may drain
 * one namespace at once. Failures of a tick are logged and emitted, never thrown into the
 * scheduler. Signal handling is the host's (the CLI's).
 *
 * @example
 * ```ts
 * const runner = coalescer.runner({ schedule: '*\/2 * * * * *', concurrency: 8 });
 * runner.on('tick', ({ result, durationMs }) => console.log(result?.recomputed, durationMs));
 * runner.start();
 * process.once('SIGTERM', () => void runner.stop().then(() => coalescer.close()));
 * ```
 */
export class Runner extends EventEmitter<RunnerEvents> {
  readonly options: Readonly<Required<RunnerOptions>>;
  /** What this runner has done: ticks run, skipped, failed, missed. */
  readonly counts: RunnerCounts = { ticks: 0, skipped: 0, failed: 0, missed: 0 };
  private state: RunnerStatus = 'idle';
  private task: ScheduledTask | undefined;
  private current: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private stopping: Promise<void> | undefined;
  private readonly logger: Logger;
  private readonly forward = {
    recomputed: (e: RecomputedEvent) => this.emit('recomputed', e),
    failed: (e: FailedEvent) => this.emit('failed', e),
  };

  constructor(
    private readonly coalescer: Drainable,
    options: RunnerOptions = {},
  ) {
    super();
    this.options = resolveRunnerOptions(options);
    this.logger = coalescer.logger.child({ worker: coalescer.worker });
  }

  /** `idle` until started, `running`, `stopping` while `stop()` waits for the work in flight, then `stopped`. */
  get status(): RunnerStatus {
    return this.state;
  }

  /** Starts the schedule. Idempotent; a stopped runner cannot start again. */
  start(): void {
    if (this.state === 'running') return;
    if (this.state !== 'idle') throw new ConfigError(`runner cannot start: it is ${this.state}`);
    this.coalescer.on('recomputed', this.forward.recomputed);
    this.coalescer.on('failed', this.forward.failed);
    this.task = cron.createTask(this.options.schedule, () => this.tick(), {
      name: 'typeorm-coalesce',
      logger: cronLogger(this.logger),
    });
    // node-cron warns once per slot it could not fire on time; count them instead (a listener
    // silences its warning), like overlapping ticks.
    this.task.on('execution:missed', () => {
      this.counts.missed += 1;
      this.logger.debug({ missed: this.counts.missed }, 'tick missed: the event loop was blocked when it was due');
    });
    void this.task.start();
    this.state = 'running';
    this.logger.info({ schedule: this.options.schedule }, 'runner started');
  }

  /**
   * Runs one tick now unless one is running (then it is skipped and counted). Resolves when the
   * tick is over; never rejects.
   */
  async tick(): Promise<void> {
    if (this.current || this.state === 'stopping' || this.state === 'stopped') {
      this.counts.skipped += 1;
      this.logger.debug({ skipped: this.counts.skipped }, 'tick skipped: the previous one is still running');
      return;
    }
    this.current = this.runTick();
    try {
      await this.current;
    } finally {
      this.current = undefined;
    }
  }

  private async runTick(): Promise<void> {
    const started = performance.now();
    this.abort = new AbortController();
    let result: DrainResult | undefined;
    let error: unknown;
    try {
      result = await this.coalescer.drain({
        concurrency: this.options.concurrency,
        max: this.options.maxPerTick,
        maxMs: this.options.maxTickMs,
        signal: this.abort.signal,
        // A parent marked during its recompute waits out its minimum interval for a later tick.
        leaveCooling: true,
      });
    } catch (err) {
      error = err;
    }
    this.counts.ticks += 1;
    const durationMs = Math.round(performance.now() - started);
    if (error !== undefined) {
      this.counts.failed += 1;
      this.logger.error({ err: errorMessage(error), durationMs }, 'tick failed');
    } else if (result) {
      const { claimed, recomputed, failed, lostRaces, rearmed, reaped, released } = result;
      this.logger.info({ claimed, recomputed, failed, lostRaces, rearmed, reaped, released, durationMs }, 'tick');
    }
    try {
      this.emit('tick', { result, error, durationMs });
    } catch (listenerError) {
      // A host's listener must not turn a tick into a failure of the scheduler.
      this.logger.error({ err: errorMessage(listenerError) }, 'a tick listener threw; ignored');
    }
  }

  /**
   * Stops scheduling, stops the tick in flight from claiming more (the parents it claimed and
   * has not started go back to pending at once), waits for its recomputes up to
   * `stopTimeoutMs`, then gives the parents still being recomputed back to pending, so that
   * nothing waits on a lease after the process exits. Resolves when nothing of this runner
   * runs, or when what still runs was given back. Idempotent.
   */
  stop(): Promise<void> {
    if (this.state === 'idle' && !this.current) {
      this.state = 'stopped';
      return Promise.resolve();
    }
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.state = 'stopping';
    await this.task?.stop();
    await this.task?.destroy();
    this.abort?.abort();
    const current = this.current;
    if (current) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        current.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.options.stopTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        const released = await this.coalescer.releaseInflight().catch((err: unknown) => {
          this.logger.error({ err: errorMessage(err) }, 'could not give back the parents in flight; their leases will expire');
          return 0;
        });
        this.logger.warn(
          { released, stopTimeoutMs: this.options.stopTimeoutMs },
          'recomputes still running at stop: parents given back to pending',
        );
      }
    }
    this.coalescer.off('recomputed', this.forward.recomputed);
    this.coalescer.off('failed', this.forward.failed);
    this.state = 'stopped';
    this.logger.info({ ...this.counts }, 'runner stopped');
  }
}

/** node-cron's logger interface, written to pino (its messages are strings, errors separate). */
function cronLogger(logger: Logger): CronLogger {
  const log = (level: 'info' | 'warn' | 'error' | 'debug') => (message: string | Error, err?: Error) => {
    const error = err ?? (message instanceof Error ? message : undefined);
    logger[level](
      { source: 'node-cron', ...(error ? { err: errorMessage(error) } : {}) },
      String(message instanceof Error ? message.message : message),
    );
  };
  return { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') };
}
