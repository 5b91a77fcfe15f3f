import { coalesceMigrations } from '../../../migrations';
import { ShopSchema1732300000000 } from './1732300000000-ShopSchema';
import { ShopCustomers1732300000003 } from './1732300000003-ShopCustomers';

/** Every migration of the demo, in order: its own schema, the library's tables, then customers. */
export const migrations = [ShopSchema1732300000000, ...coalesceMigrations, ShopCustomers1732300000003];
