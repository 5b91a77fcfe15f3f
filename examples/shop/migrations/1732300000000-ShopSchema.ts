import { Table, TableForeignKey, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Demo schema: orders and their lines. Portable: PostgreSQL and MySQL/MariaDB. */
export class ShopSchema1732300000000 implements MigrationInterface {
  name = 'ShopSchema1732300000000';

  async up(qr: QueryRunner): Promise<void> {
    const postgres = qr.connection.driver.options.type === 'postgres';
    const time = postgres ? 'timestamptz' : 'datetime';
    const id = { name: 'id', type: 'int', isPrimary: true, isGenerated: true, generationStrategy: 'increment' as const };
    await qr.createTable(
      new Table({
        name: 'shop_order',
        columns: [
          id,
          { name: 'customer', type: 'varchar', length: '120' },
          { name: 'total', type: 'numeric', precision: 14, scale: 2, default: 0 },
          { name: 'line_count', type: 'int', default: 0 },
          { name: 'recomputed_at', type: time, precision: postgres ? undefined : 6, isNullable: true },
        ],
      }),
    );
    await qr.createTable(
      new Table({
        name: 'shop_order_line',
        columns: [
          id,
          { name: 'order_id', type: 'int' },
          { name: 'sku', type: 'varchar', length: '120' },
          { name: 'qty', type: 'int' },
          { name: 'unit_price', type: 'numeric', precision: 12, scale: 2 },
          {
            name: 'created_at',
            type: time,
            precision: postgres ? undefined : 6,
            default: postgres ? 'now()' : 'CURRENT_TIMESTAMP(6)',
          },
          { name: 'deleted_at', type: time, precision: postgres ? undefined : 6, isNullable: true },
        ],
      }),
    );
    await qr.createForeignKey(
      'shop_order_line',
      new TableForeignKey({
        columnNames: ['order_id'],
        referencedTableName: 'shop_order',
        referencedColumnNames: ['id'],
        onDelete: 'CASCADE',
      }),
    );
    await qr.createIndex('shop_order_line', new TableIndex({ name: 'shop_order_line_order_id', columnNames: ['order_id'] }));
  }

  async down(qr: QueryRunner): Promise<void> {
    await qr.dropTable('shop_order_line');
    await qr.dropTable('shop_order');
  }
}
