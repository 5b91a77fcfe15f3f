import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * What tells a Redis that went back in time (a failover to a replica that missed the last
 * writes) from one that did not: `coalesce_epoch.fence` keeps the highest fence counter any
 * process saw under the epoch, and each outbox row the fence value its mark was given
 * (`sent_fence`). A Redis whose counter is below either lost writes, and is healed as a data loss.
 * Portable: PostgreSQL and MySQL/MariaDB.
 */
export class CoalesceFence1796428800000 implements MigrationInterface {
  name = 'CoalesceFence1796428800000';

  async up(qr: QueryRunner): Promise<void> {
    await qr.addColumn('coalesce_epoch', new TableColumn({ name: 'fence', type: 'bigint', default: 0 }));
    await qr.addColumn('coalesce_outbox', new TableColumn({ name: 'sent_fence', type: 'bigint', isNullable: true }));
  }

  async down(qr: QueryRunner): Promise<void> {
    await qr.dropColumn('coalesce_outbox', 'sent_fence');
    await qr.dropColumn('coalesce_epoch', 'fence');
  }
}
