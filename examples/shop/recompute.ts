import type { EntityManager } from 'typeorm';
import { Order, OrderLine } from './entities';

/**
 * Rebuilds the total and line count of many orders with one statement. Ids whose order no
 * longer exists match no row and are skipped.
 */
export async function recomputeOrders(manager: EntityManager, ids: number[]): Promise<void> {
  const orders = manager.connection.getMetadata(Order).tablePath;
  const lines = manager.connection.getMetadata(OrderLine).tablePath;
  await manager.query(
    `UPDATE ${orders} o
        SET total = coalesce(a.total, 0), line_count = coalesce(a.n, 0), recomputed_at = now()
       FROM unnest($1::int[]) AS x(id)
       LEFT JOIN (SELECT order_id, sum(qty * unit_price) AS total, count(*)::int AS n
                    FROM ${lines}
                   WHERE order_id = ANY($1::int[]) AND deleted_at IS NULL
                   GROUP BY order_id) a ON a.order_id = x.id
      WHERE o.id = x.id`,
    [ids],
  );
}

/**
 * Orders whose stored total or line count differ from their lines (0 when all are fresh):
 * every order, or those of `ids`.
 */
export async function countMismatches(manager: EntityManager, ids?: readonly number[]): Promise<number> {
  const orders = manager.connection.getMetadata(Order).tablePath;
  const lines = manager.connection.getMetadata(OrderLine).tablePath;
  const [row] = (await manager.query(
    `SELECT count(*)::int AS n
       FROM ${orders} o
       LEFT JOIN (SELECT order_id, sum(qty * unit_price) AS total, count(*)::int AS n
                    FROM ${lines} WHERE deleted_at IS NULL GROUP BY order_id) a ON a.order_id = o.id
      WHERE (o.total <> coalesce(a.total, 0) OR o.line_count <> coalesce(a.n, 0))
        AND ($1::int[] IS NULL OR o.id = ANY($1::int[]))`,
    [ids ?? null],
  )) as { n: number }[];
  return row?.n ?? 0;
}
