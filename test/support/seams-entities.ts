import 'reflect-metadata';
import {
  Column,
  DeleteDateColumn,
  Entity,
  JoinColumn,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
  type DataSource,
} from 'typeorm';
import { count, sum, type Coalescer, type Priority } from '../../src';
import type { Dialect } from './db';

// A three-level chain for the seams property: lines -> orders -> customers -> regions. Every
// foreign key is an explicit column beside its many-to-one relation. Column types are explicit
// (the test transpiler emits no decorator metadata) and portable to PostgreSQL and MariaDB.

/** Top of the chain: its customer count and what its customers spent. */
@Entity({ name: 'seam_region' })
export class SeamRegion {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 40 }) name!: string;
  @Column({ name: 'customer_count', type: 'int', default: 0 }) customerCount!: number;
  @Column({ type: 'decimal', precision: 18, scale: 2, default: 0 }) spent!: string;
}

/** Child of a region, parent of orders. */
@Entity({ name: 'seam_customer' })
export class SeamCustomer {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 40 }) name!: string;
  @Column({ name: 'region_id', type: 'int' }) regionId!: number;
  @ManyToOne(() => SeamRegion)
  @JoinColumn({ name: 'region_id' })
  region?: SeamRegion;
  @Column({ name: 'order_count', type: 'int', default: 0 }) orderCount!: number;
  @Column({ type: 'decimal', precision: 16, scale: 2, default: 0 }) spent!: string;
}

/** Child of a customer, parent of lines; saved with inline lines by cascade. */
@Entity({ name: 'seam_order' })
export class SeamOrder {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'customer_id', type: 'int' }) customerId!: number;
  @ManyToOne(() => SeamCustomer)
  @JoinColumn({ name: 'customer_id' })
  customer?: SeamCustomer;
  @Column({ type: 'decimal', precision: 14, scale: 2, default: 0 }) total!: string;
  @Column({ name: 'line_count', type: 'int', default: 0 }) lineCount!: number;
  @OneToMany(() => SeamLine, (l) => l.order, { cascade: ['insert', 'update'] }) lines?: SeamLine[];
}

/** The leaf: `sku` is a natural key for upserts; soft-deleted lines count nowhere. */
@Entity({ name: 'seam_line' })
export class SeamLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 40, unique: true }) sku!: string;
  @Column({ name: 'order_id', type: 'int' }) orderId!: number;
  // 'disable': an order saved with a few new inline lines leaves its other lines alone.
  @ManyToOne(() => SeamOrder, (o) => o.lines, { orphanedRowAction: 'disable' })
  @JoinColumn({ name: 'order_id' })
  order?: SeamOrder;
  @Column({ type: 'int' }) qty!: number;
  @Column({ name: 'unit_price', type: 'decimal', precision: 12, scale: 2 }) unitPrice!: string;
  @DeleteDateColumn({ name: 'deleted_at', nullable: true }) deletedAt?: Date | null;
}

export const SEAM_ENTITIES = [SeamRegion, SeamCustomer, SeamOrder, SeamLine];

/** How the drain treats one parent type: quiet period, longest wait, tier. */
export interface SeamPolicy {
  settleMs: number;
  maxWaitMs: number | undefined;
  priority: Priority;
}

/** Registered levels (1: orders; 2: + customers; 3: + regions) and each one's policy. */
export interface SeamShape {
  levels: 1 | 2 | 3;
  order: SeamPolicy;
  customer: SeamPolicy;
  region: SeamPolicy;
}

function optionsOf(p: SeamPolicy): { settleMs: number; maxWaitMs?: number; priority: Priority } {
  return { settleMs: p.settleMs, priority: p.priority, ...(p.maxWaitMs === undefined ? {} : { maxWaitMs: p.maxWaitMs }) };
}

/** Registers the chain's first `shape.levels` levels with declarative aggregates; the others stay plain tables. */
export function registerShape(coalescer: Coalescer, shape: SeamShape): void {
  coalescer.parent<number>(SeamOrder, {
    aggregates: {
      total: sum(SeamLine, 'qty * unitPrice', { foreignKey: 'orderId' }),
      lineCount: count(SeamLine, { foreignKey: 'orderId' }),
    },
    ...optionsOf(shape.order),
  });
  coalescer.child(SeamLine, { parent: SeamOrder, foreignKey: 'orderId' });
  if (shape.levels >= 2) {
    coalescer.parent<number>(SeamCustomer, {
      aggregates: {
        orderCount: count(SeamOrder, { foreignKey: 'customerId' }),
        spent: sum(SeamOrder, 'total', { foreignKey: 'customerId' }),
      },
      ...optionsOf(shape.customer),
    });
    coalescer.child(SeamOrder, { parent: SeamCustomer, foreignKey: 'customerId' });
  }
  if (shape.levels >= 3) {
    coalescer.parent<number>(SeamRegion, {
      aggregates: {
        customerCount: count(SeamCustomer, { foreignKey: 'regionId' }),
        spent: sum(SeamCustomer, 'spent', { foreignKey: 'regionId' }),
      },
      ...optionsOf(shape.region),
    });
    coalescer.child(SeamCustomer, { parent: SeamRegion, foreignKey: 'regionId' });
  }
}

/** Runs `text` with `?` placeholders, numbered `$n` on PostgreSQL. */
export function sql(
  ds: { query(q: string, p?: unknown[]): Promise<unknown> },
  dialect: Dialect,
  text: string,
  params: unknown[] = [],
) {
  let n = 0;
  const query = dialect === 'postgres' ? text.replace(/\?/g, () => `$${(n += 1)}`) : text;
  return ds.query(query, params) as Promise<Record<string, unknown>[]>;
}

/**
 * Empties the tables and seeds 2 regions, 3 customers, 4 orders and 8 lines, before the run's
 * coalescer attaches (no marks), with every derived column set to its truth: a drift found later
 * is the run's.
 */
export async function seedSeams(ds: DataSource, dialect: Dialect): Promise<void> {
  for (const table of ['seam_line', 'seam_order', 'seam_customer', 'seam_region']) await ds.query(`DELETE FROM ${table}`);
  const regions = await ds.getRepository(SeamRegion).save([{ name: 'north' }, { name: 'south' }]);
  const customers = await ds
    .getRepository(SeamCustomer)
    .save([0, 1, 2].map((i) => ({ name: `c${i}`, regionId: (regions[i % 2] as SeamRegion).id })));
  const orders = await ds
    .getRepository(SeamOrder)
    .save([0, 1, 2, 3].map((i) => ({ customerId: (customers[i % 3] as SeamCustomer).id })));
  await ds.getRepository(SeamLine).save(
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({
      sku: `s${i}`,
      orderId: (orders[i % 4] as SeamOrder).id,
      qty: 1 + (i % 3),
      unitPrice: ['1.25', '19.99', '0.01'][i % 3] as string,
    })),
  );
  await sql(
    ds,
    dialect,
    `UPDATE seam_order SET
       total = COALESCE((SELECT SUM(l.qty * l.unit_price) FROM seam_line l WHERE l.order_id = seam_order.id AND l.deleted_at IS NULL), 0),
       line_count = (SELECT COUNT(*) FROM seam_line l WHERE l.order_id = seam_order.id AND l.deleted_at IS NULL)`,
  );
  await sql(
    ds,
    dialect,
    `UPDATE seam_customer SET
       spent = COALESCE((SELECT SUM(o.total) FROM seam_order o WHERE o.customer_id = seam_customer.id), 0),
       order_count = (SELECT COUNT(*) FROM seam_order o WHERE o.customer_id = seam_customer.id)`,
  );
  await sql(
    ds,
    dialect,
    `UPDATE seam_region SET
       spent = COALESCE((SELECT SUM(c.spent) FROM seam_customer c WHERE c.region_id = seam_region.id), 0),
       customer_count = (SELECT COUNT(*) FROM seam_customer c WHERE c.region_id = seam_region.id)`,
  );
}
