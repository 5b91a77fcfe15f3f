import { Table, TableColumn, TableForeignKey, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Demo schema: customers, whose lifetime value is derived from their orders. Portable: PostgreSQL and MySQL/MariaDB. */
export class ShopCustomers1732300000003 implements MigrationInterface {
  name = 'ShopCustomers1732300000003';

  async up(qr: QueryRunner): Promise<void> {
    await qr.createTable(
      new Table({
        name: 'shop_customer',
        columns: [
          { name: 'id', type: 'int', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'name', type: 'varchar', length: '120' },
          { name: 'lifetime_value', type: 'numeric', precision: 16, scale: 2, default: 0 },
          { name: 'order_count', type: 'int', default: 0 },
        ],
      }),
    );
    await qr.addColumn('shop_order', new TableColumn({ name: 'customer_id', type: 'int', isNullable: true }));
    await qr.createForeignKey(
      'shop_order',
      new TableForeignKey({
        columnNames: ['customer_id'],
        referencedTableName: 'shop_customer',
        referencedColumnNames: ['id'],
        onDelete: 'SET NULL',
      }),
    );
    await qr.createIndex('shop_order', new TableIndex({ name: 'shop_order_customer_id', columnNames: ['customer_id'] }));
  }

  async down(qr: QueryRunner): Promise<void> {
    const table = await qr.getTable('shop_order');
    const fk = table?.foreignKeys.find((k) => k.columnNames.includes('customer_id'));
    if (fk) await qr.dropForeignKey('shop_order', fk);
    await qr.dropIndex('shop_order', 'shop_order_customer_id');
    await qr.dropColumn('shop_order', 'customer_id');
    await qr.dropTable('shop_customer');
  }
}
