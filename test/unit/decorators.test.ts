import { describe, expect, it } from 'vitest';
import { Aggregate, Coalesced, count, max, RegistrationError, sum } from '../../src';
import { declaredOn } from '../../src/registry/decorators';

class Line {
  id!: number;
  orderId!: number;
  qty!: number;
  note!: string | null;
}

describe('@Aggregate and @Coalesced', () => {
  it('record the aggregates by property, base classes included, and the class options', () => {
    class Base {
      @Aggregate(count(() => Line))
      lineCount!: number;
      @Aggregate(sum(() => Line, 'qty'))
      total!: number;
    }
    @Coalesced({ settleMs: 200, priority: 'low' })
    class Order extends Base {
      // A subclass's own declaration wins over its base's.
      @Aggregate(sum(() => Line, 'qty * 2'))
      override total = 0;
      @Aggregate(max(() => Line, 'qty', { foreignKey: 'orderId' }))
      biggest!: number | null;
    }
    const declared = declaredOn(Order);
    expect(Object.keys(declared.aggregates).sort()).toEqual(['biggest', 'lineCount', 'total']);
    expect(declared.aggregates.total).toMatchObject({ kind: 'sum', expression: 'qty * 2' });
    expect(declared.aggregates.biggest).toMatchObject({ kind: 'max', foreignKey: 'orderId', via: undefined });
    // The child stays lazy until registration resolves it.
    expect(typeof declared.aggregates.lineCount?.child).toBe('function');
    expect(declared.options).toEqual({ settleMs: 200, priority: 'low' });
    expect(declaredOn(Base).options).toBeUndefined();
    expect(declaredOn(Line)).toEqual({ aggregates: {}, options: undefined });
    expect(declaredOn('Order')).toEqual({ aggregates: {}, options: undefined });
  });

  it('refuse a second aggregate on one property, a static property, and a standard decorator call', () => {
    const spec = count(() => Line);
    class Twice {
      @Aggregate(spec)
      n!: number;
    }
    expect(() => Aggregate(spec)(Twice.prototype, 'n')).toThrow(
      /@Aggregate\(\) on Twice\.n: the property has an aggregate already/,
    );
    expect(() => Aggregate(spec)(Twice, 'n')).toThrow(RegistrationError);
    expect(() => Aggregate(spec)(Twice, 'n')).toThrow(/static property Twice\.n/);
    // What a TC39 decorator receives: (undefined, context).
    const standard = Aggregate(spec) as unknown as (value: undefined, context: object) => void;
    expect(() => standard(undefined, { kind: 'field', name: 'n' })).toThrow(/enable "experimentalDecorators"/);
  });

  it('are typed: a property decorator, property names of the child checked', () => {
    // Compiled, never run: each @ts-expect-error fails the typecheck if TypeScript accepts the line.
    const typeChecks = (): unknown => {
      class Checked {
        @Aggregate(count(() => Line, { where: { qty: 3 }, foreignKey: 'orderId' }))
        good!: number;
        // @ts-expect-error -- not a property of Line
        @Aggregate(count(() => Line, { foreignKey: 'ordrId' }))
        badKey!: number;
        // @ts-expect-error -- not a property of Line
        @Aggregate(count(() => Line, { where: { qtty: 3 } }))
        badWhere!: number;
        // @ts-expect-error -- a property decorator, not a method one
        @Aggregate(count(() => Line))
        method(): void {}
        // @ts-expect-error -- a property decorator, not an accessor one
        @Aggregate(count(() => Line))
        get accessor(): number {
          return 0;
        }
      }
      // @ts-expect-error -- a property decorator, not a class one
      @Aggregate(count(() => Line))
      class OnClass {}
      class OnProperty {
        // @ts-expect-error -- a class decorator, not a property one
        @Coalesced({ settleMs: 1 })
        n!: number;
      }
      return [Checked, OnClass, OnProperty];
    };
    expect(typeof typeChecks).toBe('function');
  });
});
