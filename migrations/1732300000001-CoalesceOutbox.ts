import { Table, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The outbox of marks: marks Redis did not take after a commit (or, with `delivery: 'outbox'`,
 * every mark, written inside the host's transaction) wait here until the runner relays them.
 * Portable: PostgreSQL and MySQL/MariaDB.
 */
export class CoalesceOutbox1732300000001 implements MigrationInterface {
  name = 'CoalesceOutbox1732300000001';

  async up(qr: QueryRunner): Promise<void> {
    const postgres = qr.connection.driver.options.type === 'postgres';
    await qr.createTable(
      new Table({
        name: 'coalesce_outbox',
        columns: [
          { name: 'id', type: 'bigint', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'namespace', type: 'varchar', length: '64' },
          { name: 'member', type: 'text' },
          { name: 'increment', type: 'int' },
          { name: 'base', type: 'double precision' },
          { name: 'created_at', type: postgres ? 'timestamptz' : 'timestamp', default: 'CURRENT_TIMESTAMP' },
        ],
      }),
    );
    await qr.createIndex(
      'coalesce_outbox',
      new TableIndex({ name: 'coalesce_outbox_namespace_id', columnNames: ['namespace', 'id'] }),
    );
  }

  async down(qr: QueryRunner): Promise<void> {
    await qr.dropTable('coalesce_outbox');
  }
}
