import type { BeforeApplicationShutdown, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { ConfigError, Coalescer, type Runner, type RunnerOptions } from '../index';
import type { DataSource } from 'typeorm';
import type { CoalesceModuleOptions } from './options';

/**
 * One `CoalesceModule`'s Coalescer and runner through the application's life: made and
 * attached when the module is created, the runner started on bootstrap, stopped before
 * shutdown, the Coalescer closed on shutdown.
 */
export class CoalesceLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private current: Runner | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    readonly coalescer: Coalescer,
    /** The module's own runner (its `runner` option), started on bootstrap. */
    private readonly owned: Runner | undefined,
  ) {}

  /**
   * Makes the Coalescer on `dataSource`, lets `configure` declare its parents and children, and
   * attaches it. Nothing is left open when a step fails.
   */
  static async create(name: string, options: CoalesceModuleOptions, dataSource: DataSource): Promise<CoalesceLifecycle> {
    if (options === null || typeof options !== 'object') {
      throw new ConfigError(`CoalesceModule "${name}": its options must be an object (what useFactory returned)`);
    }
    for (const key of ['dataSource', 'name']) {
      if (key in options) {
        throw new ConfigError(
          `CoalesceModule "${name}": option "${key}" cannot come from useFactory; pass it to forRootAsync({ ${key} }) beside useFactory`,
        );
      }
    }
    // Without `configure`, the entities declare themselves (@Aggregate columns).
    const { configure = (c: Coalescer) => void c.entities(), runner, ...coalescerOptions } = options;
    if (typeof configure !== 'function') {
      throw new ConfigError(
        `CoalesceModule "${name}": option "configure" = ${String(configure)}: expected a function that declares the parents and children (coalescer.parent(...), coalescer.child(...), coalescer.entities([...])), or none to register every entity with @Aggregate columns`,
      );
    }
    const coalescer = new Coalescer({ ...coalescerOptions, dataSource });
    try {
      // Made (and so validated) now: a bad runner option fails the module, not the bootstrap.
      const owned = runner ? coalescer.runner(runner === true ? {} : runner) : undefined;
      await configure(coalescer);
      await coalescer.attach();
      return new CoalesceLifecycle(name, coalescer, owned);
    } catch (error) {
      await coalescer.close();
      throw error;
    }
  }

  /** The runner draining in this process: the module's own, or the one a worker started. */
  get runner(): Runner | undefined {
    return this.current;
  }

  /**
   * Starts a runner in this process (the module's own when it has one, else one with `options`)
   * and returns it; the module stops it on shutdown. Idempotent.
   */
  startRunner(options?: RunnerOptions): Runner {
    if (this.closing)
      throw new ConfigError(`CoalesceModule "${this.name}": cannot start a runner, the application is shutting down`);
    if (this.owned && options) {
      throw new ConfigError(
        `CoalesceModule "${this.name}" already runs its own runner (its "runner" option): give the runner options in one place only`,
      );
    }
    if (!this.current) {
      this.current = this.owned ?? this.coalescer.runner(options);
      this.current.start();
    }
    return this.current;
  }

  /** Starts the module's own runner, if it has one. */
  onApplicationBootstrap(): void {
    if (this.owned) this.startRunner();
  }

  /**
   * Stops the runner and flushes the marks sent so far while the DataSource is still open: Nest
   * destroys it only on shutdown. The runner's recomputes in flight finish, up to
   * `stopTimeoutMs`, or are given back.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.current?.stop();
    await this.coalescer.flushed();
  }

  /**
   * Closes the Coalescer once the HTTP server is closed (no request marks any more), sending the
   * marks still on their way. `@nestjs/typeorm` destroys the DataSource in the same step: on
   * NestJS 11 after the global modules imported after it (so import this module after
   * TypeOrmModule), on NestJS 10 before (it runs the deepest modules first). A DataSource
   * already destroyed only matters to marks Redis refuses in these last moments: they cannot
   * be kept in the outbox.
   */
  onApplicationShutdown(): Promise<void> {
    this.closing ??= this.close();
    return this.closing;
  }

  private async close(): Promise<void> {
    await this.current?.stop();
    if (!this.coalescer.options.dataSource.isInitialized) {
      // Only the import order can change it, and only on NestJS 11 and later.
      const level = nestMajor() >= 11 ? 'warn' : 'debug';
      this.coalescer.logger[level](
        { module: this.name },
        'the DataSource was destroyed before the Coalescer closed: marks Redis does not take now cannot be kept in the outbox; import CoalesceModule after TypeOrmModule',
      );
    }
    await this.coalescer.close();
  }
}

/** The major version of the installed @nestjs/core (11 when it cannot be read). */
function nestMajor(): number {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { version } = require('@nestjs/core/package.json') as { version: string };
    return Number.parseInt(version, 10) || 11;
  } catch {
    return 11;
  }
}
