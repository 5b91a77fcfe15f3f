import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { Order, OrderLine } from './examples/shop/entities';
import { migrations } from './examples/shop/migrations';

/** PostgreSQL of the demo: DATABASE_URL, else the local server. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * The demo's DataSource. Also usable with TypeORM's CLI once built:
 * `npx typeorm migration:run -d dist/ormconfig.js`.
 */
// The only DataSource this module exports: TypeORM's CLI refuses a file exporting two (a named
// and a default export of the same instance count as two).
export const dataSource = new DataSource({
  type: 'postgres',
  url: DATABASE_URL,
  entities: [Order, OrderLine],
  migrations,
  synchronize: false,
  logging: false,
});
