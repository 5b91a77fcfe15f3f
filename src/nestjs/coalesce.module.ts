import { Module, type DynamicModule } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { ConfigError, type Coalescer } from '../index';
import { CoalesceHealthIndicator } from './health';
import { CoalesceLifecycle } from './lifecycle';
import type { CoalesceModuleAsyncOptions, CoalesceModuleIdentity, CoalesceModuleOptions } from './options';
import { DEFAULT_COALESCER, getCoalescerToken, lifecycleToken, optionsToken } from './tokens';

/**
 * Makes a Coalescer on a `@nestjs/typeorm` DataSource and makes it injectable everywhere (the
 * module is global): `@InjectCoalescer()`, or `Coalescer` by type. Import it after
 * `TypeOrmModule.forRoot(...)`, once per Coalescer (each with its own `name`).
 *
 * @example
 * ```ts
 * CoalesceModule.forRootAsync({
 *   imports: [ConfigModule],
 *   inject: [ConfigService],
 *   useFactory: (config: ConfigService) => ({
 *     redis: config.getOrThrow('REDIS_URL'),
 *     namespace: 'shop',
 *     configure: (coalescer) => {
 *       coalescer.parent(Order, { aggregates: { total: sum(OrderLine, 'qty * unitPrice') } });
 *       coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
 *     },
 *   }),
 * })
 * ```
 */
@Module({})
export class CoalesceModule {
  /** A Coalescer with options known when the module is declared. */
  static forRoot(options: CoalesceModuleOptions & CoalesceModuleIdentity): DynamicModule {
    const { name, dataSource, ...rest } = options;
    return CoalesceModule.forRootAsync({ name, dataSource, useFactory: () => rest });
  }

  /** A Coalescer whose options a factory returns, from injected providers (ConfigService...). */
  static forRootAsync(options: CoalesceModuleAsyncOptions): DynamicModule {
    const name = options.name ?? DEFAULT_COALESCER;
    if (typeof name !== 'string' || name === '') {
      throw new ConfigError(`invalid CoalesceModule option "name" = ${JSON.stringify(name)}: expected a non-empty string`);
    }
    if (typeof options.useFactory !== 'function') {
      throw new ConfigError(
        `CoalesceModule "${name}": forRootAsync() needs useFactory, a function returning the module's options`,
      );
    }
    const token = getCoalescerToken(name);
    return {
      module: CoalesceModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        { provide: optionsToken(name), inject: options.inject ?? [], useFactory: options.useFactory },
        {
          provide: lifecycleToken(name),
          inject: [optionsToken(name), getDataSourceToken(options.dataSource)],
          useFactory: (moduleOptions: CoalesceModuleOptions, dataSource: DataSource) =>
            CoalesceLifecycle.create(name, moduleOptions, dataSource),
        },
        {
          provide: token,
          inject: [lifecycleToken(name)],
          useFactory: (lifecycle: CoalesceLifecycle): Coalescer => lifecycle.coalescer,
        },
        CoalesceHealthIndicator,
      ],
      exports: [token, lifecycleToken(name), CoalesceHealthIndicator],
    };
  }
}
