import { ShopSchema1732300000000 } from './1732300000000-ShopSchema';
import { CoalesceOutbox1732300000001 } from './1732300000001-CoalesceOutbox';

/** The outbox table typeorm-coalesce needs; add it to your own migrations. */
export const coalesceMigrations = [CoalesceOutbox1732300000001];

/** Every migration of the demo, in order: pass to a DataSource's `migrations` option. */
export const migrations = [ShopSchema1732300000000, ...coalesceMigrations];
