import 'reflect-metadata';
import { DataSource, EntitySchema } from 'typeorm';
import { coalesceMigrations } from '../migrations';
import { freshSchema } from './util';

/** A parent type with no table: drain benchmarks recompute nothing, they measure the claim protocol. */
export const BenchParent = new EntitySchema<{ id: number }>({
  name: 'BenchParent',
  tableName: 'bench_parent',
  columns: { id: { type: 'int', primary: true } },
});

/**
 * A DataSource that knows BenchParent, on a schema of its own holding only the outbox table
 * (made by the project's migration). `drop()` removes the schema; workers pass `create: false`.
 */
export async function parentDataSource(
  url: string,
  schema: string,
  create = true,
): Promise<DataSource & { drop(): Promise<void> }> {
  if (create) await freshSchema(url, schema);
  const ds = new DataSource({
    type: 'postgres',
    url,
    schema,
    entities: [BenchParent],
    migrations: coalesceMigrations,
    migrationsRun: create,
    logging: false,
    extra: { max: 2, options: `-c search_path=${schema}` },
  });
  await ds.initialize();
  return Object.assign(ds, {
    async drop() {
      if (!ds.isInitialized) return;
      if (create) await ds.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await ds.destroy();
    },
  });
}
