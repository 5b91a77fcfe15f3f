import type { InjectionToken, ModuleMetadata, OptionalFactoryDependency } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import type { Coalescer, CoalescerOptions, RunnerOptions } from '../index';

/** What the module adds to the Coalescer's own options. */
export interface CoalesceModuleSettings {
  /**
   * Declares the parents and children on the new Coalescer (`coalescer.parent(...)`,
   * `coalescer.child(...)`, `coalescer.entities([...])`); the module calls `attach()` once it
   * has resolved.
   * @defaultValue `(coalescer) => coalescer.entities()`: every entity of the DataSource with
   * `@Aggregate` columns, its children and chains
   */
  configure?: (coalescer: Coalescer) => void | Promise<void>;
  /**
   * A runner owned by the module: started on application bootstrap, stopped before the
   * application shuts down (recomputes in flight finish, up to `stopTimeoutMs`). `true` runs one
   * with the default options. Web processes usually leave it off and run a worker instead.
   * @defaultValue false
   */
  runner?: RunnerOptions | boolean;
}

/** What `forRootAsync`'s factory returns: the Coalescer's options but `dataSource`, and the module's settings. */
export type CoalesceModuleOptions = Omit<CoalescerOptions, 'dataSource'> & CoalesceModuleSettings;

/** Which Coalescer a module makes, and which DataSource it takes. */
export interface CoalesceModuleIdentity {
  /**
   * The Coalescer's name in the container, for `@InjectCoalescer(name)`; one per module. Leave it
   * out for the default one, injected as `Coalescer`.
   */
  name?: string;
  /**
   * The `@nestjs/typeorm` DataSource the Coalescer works on: its connection name (or the
   * DataSource whose name it is), as given to `TypeOrmModule.forRoot({ name })`.
   * @defaultValue the default connection
   */
  dataSource?: string | DataSource;
}

/** Options of `CoalesceModule.forRootAsync`. */
export interface CoalesceModuleAsyncOptions extends CoalesceModuleIdentity {
  /** Modules whose providers the factory injects (ConfigModule...). */
  imports?: ModuleMetadata['imports'];
  /** Providers passed to the factory, in order. */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  /** Returns the module's options (no `dataSource`: it comes from `@nestjs/typeorm`). */
  // The factory's arguments are whatever `inject` names: Nest's own factories are typed so too.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  useFactory: (...args: any[]) => CoalesceModuleOptions | Promise<CoalesceModuleOptions>;
}
