import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The outbox of undelivered marks: marks Redis did not take after a commit (or, with
 * `delivery: 'outbox'`, every mark, written inside the host's transaction) wait here until the
 * runner relays them.
 */
export class CoalesceOutbox1732300000001 implements MigrationInterface {
  name = 'CoalesceOutbox1732300000001';

  async up(qr: QueryRunner): Promise<void> {
    await qr.query(`
      CREATE TABLE coalesce_outbox (
        id bigserial PRIMARY KEY,
        namespace varchar(64) NOT NULL,
        member text NOT NULL,
        increment int NOT NULL,
        base double precision NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await qr.query(`CREATE INDEX coalesce_outbox_namespace_id ON coalesce_outbox (namespace, id)`);
  }

  async down(qr: QueryRunner): Promise<void> {
    await qr.query(`DROP TABLE coalesce_outbox`);
  }
}
