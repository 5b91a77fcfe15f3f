import 'reflect-metadata';
import {
  Column,
  CreateDateColumn,
  DeleteDateColumn,
  Entity,
  Index,
  JoinColumn,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
} from 'typeorm';

// Column types are explicit (the test runner's transpiler emits no decorator metadata) and
// portable: the shop runs on PostgreSQL and on MySQL/MariaDB. Date columns take the driver's
// own type (timestamp / datetime(6)).

/** A parent of orders: its lifetime value and order count are derived from its orders. */
@Entity({ name: 'shop_customer' })
export class Customer {
  @PrimaryGeneratedColumn({ type: 'int' })
  id!: number;

  @Column({ type: 'varchar', length: 120 })
  name!: string;

  /** Sum of the totals of its orders; kept by the coalescer, from the orders' own derived totals. */
  @Column({ name: 'lifetime_value', type: 'numeric', precision: 16, scale: 2, default: 0 })
  lifetimeValue!: string;

  /** Number of its orders; kept by the coalescer. */
  @Column({ name: 'order_count', type: 'int', default: 0 })
  orderCount!: number;
}

/** A parent of lines, and a child of its customer: its total and line count are derived from its lines. */
@Entity({ name: 'shop_order' })
export class Order {
  @PrimaryGeneratedColumn({ type: 'int' })
  id!: number;

  @Column({ type: 'varchar', length: 120 })
  customer!: string;

  // The key as a plain column (the foreign key constraint is the migration's): an order moved
  // to another customer marks both.
  @Index()
  @Column({ name: 'customer_id', type: 'int', nullable: true })
  customerId!: number | null;

  /** Sum of qty * unit_price over live lines; kept by the coalescer. */
  @Column({ type: 'numeric', precision: 14, scale: 2, default: 0 })
  total!: string;

  /** Number of live lines; kept by the coalescer. */
  @Column({ name: 'line_count', type: 'int', default: 0 })
  lineCount!: number;

  @Column({ name: 'recomputed_at', type: 'timestamp', nullable: true })
  recomputedAt!: Date | null;

  @OneToMany(() => OrderLine, (line) => line.order)
  lines!: OrderLine[];
}

/** A child: each save of a line makes its order stale. */
@Entity({ name: 'shop_order_line' })
export class OrderLine {
  @PrimaryGeneratedColumn({ type: 'int' })
  id!: number;

  // The foreign key is an explicit column, so a line moved to another order marks both.
  @Index()
  @Column({ name: 'order_id', type: 'int' })
  orderId!: number;

  @ManyToOne(() => Order, (order) => order.lines, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'order_id' })
  order?: Order;

  @Column({ type: 'varchar', length: 120 })
  sku!: string;

  @Column({ type: 'int' })
  qty!: number;

  @Column({ name: 'unit_price', type: 'numeric', precision: 12, scale: 2 })
  unitPrice!: string;

  @CreateDateColumn({ name: 'created_at' })
  createdAt!: Date;

  @DeleteDateColumn({ name: 'deleted_at', nullable: true })
  deletedAt!: Date | null;
}
