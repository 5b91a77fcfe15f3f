import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Demo schema: orders and their lines. */
export class ShopSchema1732300000000 implements MigrationInterface {
  name = 'ShopSchema1732300000000';

  async up(qr: QueryRunner): Promise<void> {
    await qr.query(`
      CREATE TABLE shop_order (
        id serial PRIMARY KEY,
        customer varchar(120) NOT NULL,
        total numeric(14,2) NOT NULL DEFAULT 0,
        line_count int NOT NULL DEFAULT 0,
        recomputed_at timestamptz
      )`);
    await qr.query(`
      CREATE TABLE shop_order_line (
        id serial PRIMARY KEY,
        order_id int NOT NULL REFERENCES shop_order(id) ON DELETE CASCADE,
        sku varchar(120) NOT NULL,
        qty int NOT NULL,
        unit_price numeric(12,2) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz
      )`);
    await qr.query(`CREATE INDEX shop_order_line_order_id ON shop_order_line (order_id)`);
  }

  async down(qr: QueryRunner): Promise<void> {
    await qr.query(`DROP TABLE shop_order_line`);
    await qr.query(`DROP TABLE shop_order`);
  }
}
