import type { DataSource } from 'typeorm';
import { Coalescer, count, sum, type CoalescerOptions } from '../../src';
import { Customer, Order, OrderLine } from './entities';
import { dataSource } from '../../ormconfig';

/** Redis of the demo: REDIS_URL, else the local server. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const REDIS_URL = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;

/**
 * Registers the shop on a new Coalescer, with no hand-written SQL: an order's total and line
 * count are aggregates of its lines, a customer's lifetime value and order count aggregates of
 * its orders. Orders are children of customers too, so a recomputed order marks its customer
 * (a parent chain), and an order moved to another customer marks both.
 */
export function shopCoalescer(dataSource: DataSource, options: Partial<Omit<CoalescerOptions, 'dataSource'>> = {}): Coalescer {
  const coalescer = new Coalescer({ redis: REDIS_URL, namespace: 'shop', ...options, dataSource });
  registerShop(coalescer);
  return coalescer;
}

/** The shop's registration on `coalescer` (what {@link shopCoalescer} registers). */
export function registerShop(coalescer: Coalescer): void {
  coalescer.parent<number>(Order, {
    aggregates: {
      total: sum(OrderLine, 'qty * unitPrice'),
      lineCount: count(OrderLine),
    },
  });
  coalescer.parent<number>(Customer, {
    // Drained after the orders, so the marks a batch of orders sends its customers coalesce
    // into one recompute each.
    priority: 'low',
    aggregates: {
      lifetimeValue: sum(Order, 'total', { foreignKey: 'customerId' }),
      orderCount: count(Order, { foreignKey: 'customerId' }),
    },
  });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  coalescer.child(Order, { parent: Customer, foreignKey: 'customerId' });
}

/**
 * The module the `coalesce` CLI loads with `--app`: a default export returning a Coalescer
 * whose DataSource is initialized.
 */
export default async function createApp(): Promise<Coalescer> {
  if (!dataSource.isInitialized) await dataSource.initialize();
  const coalescer = shopCoalescer(dataSource);
  await coalescer.attach();
  return coalescer;
}
