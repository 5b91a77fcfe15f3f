import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Column, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { Coalescer, RegistrationError } from '../../src';
import { createTestDb, Order, OrderLine, redisUrl, suffix, testLogger, type TestDb } from '../support';

@Entity({ name: 'reg_pair' })
class Pair {
  @PrimaryColumn({ type: 'int' }) a!: number;
  @PrimaryColumn({ type: 'int' }) b!: number;
}
@Entity({ name: 'reg_other' })
class Other {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'int' }) orderId!: number;
}
class NotAnEntity {}

describe('registration errors name the entity and the field', () => {
  let db: TestDb;
  const made: Coalescer[] = [];
  beforeAll(async () => {
    db = await createTestDb('registration', { entities: [Order, OrderLine, Pair, Other] });
  });
  afterAll(async () => {
    for (const c of made) await c.close();
    await db.destroy();
  });
  const make = (): Coalescer => {
    const c = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: `reg-${suffix()}`, logger: testLogger() });
    made.push(c);
    return c;
  };
  const noop = { recompute: async () => undefined };

  it('an entity the DataSource does not know', () => {
    expect(() => make().parent(NotAnEntity, noop)).toThrow(/parent NotAnEntity is not an entity of this DataSource/);
    expect(() => make().parent('Nope', noop)).toThrow(/parent Nope is not an entity/);
  });

  it('a foreign key that is not a column, listing the columns', () => {
    const c = make().parent(Order, noop);
    expect(() => c.child(OrderLine, { parent: Order, foreignKey: 'order_id' })).toThrow(RegistrationError);
    expect(() => c.child(OrderLine, { parent: Order, foreignKey: 'order_id' })).toThrow(
      /child OrderLine: foreignKey "order_id" is not a column or many-to-one relation \(columns: id, orderId/,
    );
  });

  it('a parent registered twice, a child before its parent, a composite key, no recompute', () => {
    const c = make().parent(Order, noop);
    expect(() => c.parent(Order, noop)).toThrow(/parent Order is already registered/);
    expect(() => make().child(Other, { parent: Order, foreignKey: 'orderId' })).toThrow(
      /child Other: Order is not a registered parent \(known: none\)/,
    );
    expect(() => make().parent(Pair, noop)).toThrow(/parent Pair has 2 primary columns/);
    expect(() => make().parent(Order, {})).toThrow(/parent Order: give recompute or recomputeMany/);
    expect(() => make().parent(Order, { ...noop, priority: 'urgent' as never })).toThrow(/priority must be one of/);
    expect(() => make().parent(Order, { ...noop, settleMs: -5 })).toThrow(/settleMs must be an integer/);
  });

  it('a child registered twice for the same parent and key; a relation name works as the key', () => {
    const c = make().parent(Order, noop);
    c.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    expect(() => c.child(OrderLine, { parent: Order, foreignKey: 'orderId' })).toThrow(/already registered for parent Order/);
    expect(() => make().parent(Order, noop).child(OrderLine, { parent: Order, foreignKey: 'order' })).not.toThrow();
  });

  it('mark() of an unknown parent lists the known ones; a bad id names it', async () => {
    const c = make().parent(Order, noop);
    await expect(c.mark('Invoice', 1)).rejects.toThrow(/Invoice is not a registered parent \(known: Order\)/);
    await expect(c.mark(Order, 'x1')).rejects.toThrow(/Order: id "x1" is not an integer/);
  });

  it('attach() needs an initialized DataSource and a parent', async () => {
    await expect(make().attach()).rejects.toThrow(/no parent registered/);
  });
});
