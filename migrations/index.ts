import { ShopSchema1732300000000 } from './1732300000000-ShopSchema';
import { CoalesceOutbox1732300000001 } from './1732300000001-CoalesceOutbox';
import { CoalesceEpoch1732300000002 } from './1732300000002-CoalesceEpoch';

/** The tables typeorm-coalesce needs (the outbox and the epoch); add them to your own migrations. */
export const coalesceMigrations = [CoalesceOutbox1732300000001, CoalesceEpoch1732300000002];

/** Every migration of the demo, in order: pass to a DataSource's `migrations` option. */
export const migrations = [ShopSchema1732300000000, ...coalesceMigrations];
