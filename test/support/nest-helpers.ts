import 'reflect-metadata';
import type { LoggerService } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import pino from 'pino';
import { DataSource, type DataSourceOptions } from 'typeorm';
import type { CoalesceLogger } from '../../src';
import { Customer, Order, OrderLine } from '../../examples/shop/entities';
import { migrations } from '../../examples/shop/migrations';
import { databaseUrl } from './db';
import { redisClient } from './redis';

// What the NestJS tests share: the shop's registration, log capture, schemas, a TypeOrmModule.

/** The shop's registration: orders from their lines, customers from their orders (a chain). */
export { registerShop } from '../../examples/shop/app';

/** Log lines at warn and above, from the coalescers and from Nest. */
export class Logs {
  readonly lines: string[] = [];
  readonly coalesce: CoalesceLogger = pino({ level: 'warn' }, { write: (line: string) => void this.lines.push(line) });
  readonly nest: LoggerService = {
    log: () => undefined,
    error: (message: unknown) => void this.lines.push(`nest error: ${String(message)}`),
    warn: (message: unknown) => void this.lines.push(`nest warn: ${String(message)}`),
  };
}

export async function withAdmin<T>(work: (ds: DataSource) => Promise<T>): Promise<T> {
  const admin = new DataSource({ type: 'postgres', url: databaseUrl() });
  await admin.initialize();
  try {
    return await work(admin);
  } finally {
    await admin.destroy();
  }
}

export const createSchema = (schema: string): Promise<unknown> => withAdmin((ds) => ds.query(`CREATE SCHEMA "${schema}"`));
export const dropSchema = (schema: string): Promise<unknown> =>
  withAdmin((ds) => ds.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));

/**
 * TypeOrmModule on `schema`, with the shop's tables and the library's made by migrations. The
 * DataSources it makes are pushed to `made` (an application that fails to compile leaves its
 * DataSource open: the test closes it).
 */
export function typeOrm(schema: string, name?: string, made: DataSource[] = []) {
  return TypeOrmModule.forRootAsync({
    ...(name ? { name } : {}),
    useFactory: () => ({
      // With forRootAsync, @nestjs/typeorm reads the name from the factory's options too.
      ...(name ? { name } : {}),
      type: 'postgres' as const,
      url: databaseUrl(),
      schema,
      entities: [Customer, Order, OrderLine],
      migrations,
      migrationsRun: true,
      logging: false,
      extra: { options: `-c search_path=${schema}`, max: 5 },
    }),
    dataSourceFactory: async (options) => {
      const ds = await new DataSource(options as DataSourceOptions).initialize();
      made.push(ds);
      return ds;
    },
  });
}

export async function clearNamespace(namespace: string): Promise<void> {
  const redis = redisClient();
  const keys = await redis.keys(`{${namespace}}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
}

export const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
