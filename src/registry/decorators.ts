import { RegistrationError } from '../errors';
import type { AggregateSpec } from '../aggregates/spec';
import type { EntityClass, ParentOptions } from './model';

export type { EntityClass } from './model';

// What the decorators record, by class, for `coalescer.entities()` to read. They write nothing
// else anywhere (no reflect-metadata, no decorator metadata), so they work with esbuild and tsc
// alike, under `experimentalDecorators` as TypeORM's own decorators need.

/** The parent options a class decorator may give: how its parents are drained, not how they are computed. */
export type CoalescedOptions = Pick<ParentOptions, 'settleMs' | 'priority' | 'maxWaitMs' | 'minIntervalMs' | 'batchSize'>;

const aggregates = new WeakMap<object, Map<string, AggregateSpec>>();
const coalesced = new WeakMap<object, CoalescedOptions>();

/**
 * Declares a column of an entity as an aggregate over its children, for
 * `coalescer.entities([...])`:
 *
 * ```ts
 * @Column('int', { default: 0 })
 * @Aggregate(count(() => Comment))
 * commentCount!: number;
 * ```
 *
 * The property must be a column of the entity. The child's foreign key to the entity is inferred
 * from the child's one many-to-one relation to it unless the spec gives `foreignKey` or `via`.
 * A property decorator (`experimentalDecorators`); it needs no decorator metadata.
 */
export function Aggregate(spec: AggregateSpec): (prototype: object, property: string, notAMethod?: never) => void {
  // The third parameter makes TypeScript refuse the decorator on a method or an accessor, which
  // it would call with their property descriptor.
  return (prototype: object, property: string) => {
    if (typeof property !== 'string') {
      const context = property as unknown;
      const hint =
        typeof context === 'object' && context !== null
          ? ': it was called as a standard decorator; enable "experimentalDecorators" in tsconfig.json, as TypeORM needs'
          : '';
      throw new RegistrationError(`@Aggregate() applies to properties named by a string${hint}`);
    }
    if (typeof prototype === 'function') {
      throw new RegistrationError(`@Aggregate() on static property ${prototype.name}.${property}: it applies to entity columns`);
    }
    const owner = prototype.constructor;
    let declared = aggregates.get(owner);
    if (!declared) {
      declared = new Map();
      aggregates.set(owner, declared);
    }
    if (declared.has(property)) {
      throw new RegistrationError(`@Aggregate() on ${owner.name}.${property}: the property has an aggregate already`);
    }
    declared.set(property, spec);
  };
}

/**
 * Gives the parent options of an entity whose columns are declared with {@link Aggregate}:
 * `@Coalesced({ settleMs: 200 })`. A class decorator (`experimentalDecorators`).
 */
export function Coalesced(options: CoalescedOptions): (target: EntityClass) => void {
  return (target: EntityClass) => {
    if (typeof target !== 'function') {
      throw new RegistrationError('@Coalesced() applies to entity classes; enable "experimentalDecorators" in tsconfig.json');
    }
    coalesced.set(target, Object.freeze({ ...options }));
  };
}

/**
 * The aggregates declared on `target`'s properties (its base classes' included, a subclass's own
 * winning) and its {@link Coalesced} options. Empty when it declares none.
 */
export function declaredOn(target: unknown): {
  readonly aggregates: Record<string, AggregateSpec>;
  readonly options: CoalescedOptions | undefined;
} {
  const chain: object[] = [];
  for (let at: unknown = target; typeof at === 'function' && at !== Function.prototype; at = Object.getPrototypeOf(at)) {
    chain.unshift(at);
  }
  const found: Record<string, AggregateSpec> = {};
  let options: CoalescedOptions | undefined;
  for (const type of chain) {
    for (const [property, spec] of aggregates.get(type) ?? []) found[property] = spec;
    options = coalesced.get(type) ?? options;
  }
  return { aggregates: found, options };
}
