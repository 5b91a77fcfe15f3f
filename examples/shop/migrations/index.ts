import { coalesceMigrations } from '../../../src/migrations';
import { ShopSchema1732300000000 } from './1732300000000-ShopSchema';

/** Every migration of the demo, in order: its own schema, then the library's tables. */
export const migrations = [ShopSchema1732300000000, ...coalesceMigrations];
