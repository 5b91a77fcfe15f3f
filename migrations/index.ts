import type { MigrationInterface } from 'typeorm';
import { CoalesceOutbox1732300000001 } from './1732300000001-CoalesceOutbox';
import { CoalesceEpoch1732300000002 } from './1732300000002-CoalesceEpoch';
import { CoalesceFence1796428800000 } from './1796428800000-CoalesceFence';

/**
 * The tables typeorm-coalesce needs (the outbox of marks, and each namespace's epoch), oldest first. Add them
 * to your DataSource's `migrations` (`migrations: [...coalesceMigrations, ...yours]`) and run
 * them with `dataSource.runMigrations()` or TypeORM's CLI. A new release may add entries here:
 * run your migrations after upgrading.
 *
 * Imported from `typeorm-coalesce/migrations`, so an application that never runs migrations
 * from code does not load them.
 */
// Listed by hand (an import per file works compiled, under ts-node, vitest and bundlers alike);
// test/unit/migrations.test.ts fails when a file of this folder is missing from the list.
export const coalesceMigrations: (new () => MigrationInterface)[] = [
  CoalesceOutbox1732300000001,
  CoalesceEpoch1732300000002,
  CoalesceFence1796428800000,
];
