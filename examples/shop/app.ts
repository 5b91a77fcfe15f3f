import type { DataSource } from 'typeorm';
import type { Logger } from 'pino';
import { Coalescer, type CoalescerOptions } from '../../src';
import { Order, OrderLine } from './entities';
import { recomputeOrders } from './recompute';
import { dataSource } from '../../ormconfig';

/** Redis of the demo: REDIS_URL, else the local server. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Registers the shop's parents and children on a new Coalescer. */
export function shopCoalescer(
  dataSource: DataSource,
  options: Partial<Omit<CoalescerOptions, 'dataSource'>> & { logger?: Logger } = {},
): Coalescer {
  const coalescer = new Coalescer({ redis: REDIS_URL, namespace: 'shop', ...options, dataSource });
  coalescer.parent<number>(Order, {
    recompute: (id, { manager }) => recomputeOrders(manager, [id]),
    recomputeMany: (ids, { manager }) => recomputeOrders(manager, ids),
  });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  return coalescer;
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
