import 'reflect-metadata';
import { Entity, PrimaryColumn } from 'typeorm';
import { Order, OrderLine } from '../../examples/shop/entities';
import { recomputeOrders, countMismatches } from '../../examples/shop/recompute';

export { Order, OrderLine, recomputeOrders, countMismatches };

/**
 * A parent with nothing but its id, for tests of the drain itself: their recomputes do what the
 * test says (count, wait, fail), not SQL. Each test file has a schema of its own.
 */
@Entity({ name: 'doc' })
export class Doc {
  @PrimaryColumn({ type: 'int' }) id!: number;
}
