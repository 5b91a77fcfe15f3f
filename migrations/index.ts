import { ShopSchema1732300000000 } from './1732300000000-ShopSchema';

/** Every migration, in order: pass to a DataSource's `migrations` option. */
export const migrations = [ShopSchema1732300000000];
