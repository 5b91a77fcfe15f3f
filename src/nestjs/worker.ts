import type { DynamicModule, INestApplicationContext, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Coalescer, Runner, RunnerOptions } from '../index';
import type { CoalesceLifecycle } from './lifecycle';
import { DEFAULT_COALESCER, lifecycleToken } from './tokens';

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  /** The `CoalesceModule` to drain, by its `name`. @defaultValue the default one */
  name?: string;
  /**
   * The runner's options, when the module does not run its own (its `runner` option).
   * @defaultValue the runner's defaults
   */
  runner?: RunnerOptions;
  /**
   * Nest's logger for the application context (`NestFactory.createApplicationContext`'s option).
   * @defaultValue Nest's default logger
   */
  logger?: NonNullable<Parameters<typeof NestFactory.createApplicationContext>[1]>['logger'];
  /**
   * Stop on SIGINT and SIGTERM: the runner first (recomputes in flight finish), then
   * `app.close()`; a second signal exits at once with code 130.
   * @defaultValue true
   */
  handleSignals?: boolean;
}

/** A running worker. */
export interface Worker {
  /** The Nest application context (no HTTP server). */
  readonly app: INestApplicationContext;
  readonly coalescer: Coalescer;
  readonly runner: Runner;
  /** Resolves once the worker has stopped (by a signal or by `close()`). */
  readonly closed: Promise<void>;
  /** Stops the runner (recomputes in flight finish), then closes the application. Idempotent. */
  close(): Promise<void>;
}

/**
 * Runs a worker process: boots `module` (it imports `TypeOrmModule` and `CoalesceModule`; an
 * application module does, its HTTP server is not started) as a standalone application context,
 * starts the runner of its CoalesceModule, and stops gracefully on SIGINT/SIGTERM.
 *
 * @example
 * ```ts
 * // worker.ts
 * void runWorker(AppModule, { runner: { concurrency: 8 } });
 * ```
 */
export async function runWorker(module: Type | DynamicModule, options: WorkerOptions = {}): Promise<Worker> {
  const { name = DEFAULT_COALESCER, runner: runnerOptions, logger, handleSignals = true } = options;
  const app = await NestFactory.createApplicationContext(module, logger === undefined ? {} : { logger });
  let runner: Runner;
  let coalescer: Coalescer;
  try {
    const lifecycle = app.get<CoalesceLifecycle>(lifecycleToken(name));
    runner = lifecycle.startRunner(runnerOptions);
    coalescer = lifecycle.coalescer;
  } catch (error) {
    await app.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  let closedResolve: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (closedResolve = resolve));
  const onSignal = (): void => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.once('SIGINT', () => process.exit(130));
    process.once('SIGTERM', () => process.exit(130));
    close().catch((error: unknown) => {
      coalescer.logger.error({ err: error instanceof Error ? error.message : String(error) }, 'the worker did not stop cleanly');
      process.exitCode = 1;
    });
  };
  const close = (): Promise<void> => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    // The runner first, before any module's onModuleDestroy takes away what a recompute uses;
    // then the module closes the Coalescer, and @nestjs/typeorm the DataSource.
    closing ??= runner
      .stop()
      .then(() => app.close())
      .finally(closedResolve);
    return closing;
  };
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return { app, coalescer, runner, closed, close };
}
