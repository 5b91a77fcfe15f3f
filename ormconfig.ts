import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { Customer, Order, OrderLine } from './examples/shop/entities';
import { migrations } from './examples/shop/migrations';

/**
 * The demo's database: DATABASE_URL, else the local PostgreSQL. A `mysql://` or `mariadb://`
 * URL runs the same demo on MySQL/MariaDB.
 */
export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DATABASE_URL = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;

/** The DataSource driver of a database URL. */
export function driverOf(url: string): 'postgres' | 'mariadb' {
  return /^(mysql|mariadb):/.test(url) ? 'mariadb' : 'postgres';
}

/**
 * The demo's DataSource. Also usable with TypeORM's CLI once built:
 * `npx typeorm migration:run -d dist/ormconfig.js`.
 */
// The only DataSource this module exports: TypeORM's CLI refuses a file exporting two (a named
// and a default export of the same instance count as two).
export const dataSource = new DataSource({
  type: driverOf(DATABASE_URL),
  url: DATABASE_URL,
  entities: [Customer, Order, OrderLine],
  migrations,
  synchronize: false,
  logging: false,
});
