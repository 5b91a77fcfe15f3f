import type { DataSource } from 'typeorm';
import { ConfigError, RegistrationError } from '../errors';
import { declaredOn, type EntityClass } from './decorators';
import type { ParentType } from './model';
import type { Registry } from './registry';

/**
 * Registers entities whose columns are declared with `@Aggregate` (`targets`, or every such entity
 * of the DataSource): each becomes a parent with those aggregates (and its `@Coalesced` options),
 * and each aggregate's child a child of it, by the foreign key the aggregate reads (given, or
 * inferred from the child's one many-to-one relation to the parent), or through its many-to-many
 * relation. A parent that is itself such a child (Post under Author) chains to the parent above.
 * Whole or nothing: a RegistrationError leaves nothing of the call registered.
 */
export function registerDeclared(registry: Registry, dataSource: DataSource, targets?: readonly EntityClass[]): ParentType[] {
  if (!dataSource.isInitialized) {
    throw new ConfigError(
      'entities(): the DataSource is not initialized: call await dataSource.initialize() before registering entities',
    );
  }
  if (targets !== undefined && !Array.isArray(targets)) {
    throw new RegistrationError(`entities(): expected an array of entity classes, got ${String(targets)}`);
  }
  const candidates: unknown[] = targets ?? dataSource.entityMetadatas.map((m) => m.target);
  const declared = candidates.map((target) => ({ target, ...declaredOn(target) }));
  const parents = declared.filter((d) => Object.keys(d.aggregates).length > 0);
  if (targets !== undefined) {
    const bare = declared.find((d) => Object.keys(d.aggregates).length === 0);
    if (bare) {
      throw new RegistrationError(
        `entities(): ${nameOf(bare.target)} declares no @Aggregate property; list the entities whose columns are aggregates ` +
          '(their children are registered from them)',
      );
    }
  }
  if (parents.length === 0) {
    throw new RegistrationError(
      'entities(): no entity of the DataSource declares an @Aggregate property; declare one (@Aggregate(count(() => Child))) or call parent()',
    );
  }
  return registry.atomically(() => {
    const types = parents.map((d) => registry.addParent(d.target as EntityClass, { ...d.options, aggregates: d.aggregates }));
    for (const parent of types) {
      for (const { source } of parent.aggregates?.fields ?? []) {
        // Links through a join table were registered with the parent.
        if (source.kind !== 'foreignKey') continue;
        const foreignKey = (source.relation ?? source.column).propertyName;
        registry.addChild(source.child.target, { parent: parent.metadata.target, foreignKey }, 'aggregate');
      }
    }
    return types;
  });
}

function nameOf(target: unknown): string {
  return typeof target === 'function' ? target.name || 'an anonymous class' : String(target);
}
