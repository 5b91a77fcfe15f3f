import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * What survives a Redis data loss: each outbox row records the epoch under which Redis took its
 * mark (`sent_epoch`, with `batch` naming the rows of one write), and `coalesce_epoch` keeps each
 * namespace's epoch outside Redis, so a loss is found even after every process restarted.
 * Portable: PostgreSQL and MySQL/MariaDB.
 */
export class CoalesceEpoch1732300000002 implements MigrationInterface {
  name = 'CoalesceEpoch1732300000002';

  async up(qr: QueryRunner): Promise<void> {
    await qr.addColumns('coalesce_outbox', [
      new TableColumn({ name: 'sent_epoch', type: 'varchar', length: '32', isNullable: true }),
      new TableColumn({ name: 'batch', type: 'varchar', length: '36', isNullable: true }),
    ]);
    await qr.createIndex(
      'coalesce_outbox',
      new TableIndex({ name: 'coalesce_outbox_namespace_sent', columnNames: ['namespace', 'sent_epoch', 'id'] }),
    );
    await qr.createIndex('coalesce_outbox', new TableIndex({ name: 'coalesce_outbox_batch', columnNames: ['batch'] }));
    await qr.createTable(
      new Table({
        name: 'coalesce_epoch',
        columns: [
          { name: 'namespace', type: 'varchar', length: '64', isPrimary: true },
          { name: 'epoch', type: 'varchar', length: '32' },
        ],
      }),
    );
  }

  async down(qr: QueryRunner): Promise<void> {
    await qr.dropTable('coalesce_epoch');
    await qr.dropIndex('coalesce_outbox', 'coalesce_outbox_batch');
    await qr.dropIndex('coalesce_outbox', 'coalesce_outbox_namespace_sent');
    await qr.dropColumns('coalesce_outbox', ['sent_epoch', 'batch']);
  }
}
