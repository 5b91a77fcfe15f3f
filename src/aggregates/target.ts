import type { DataSource, EntityMetadata, EntityTarget, ObjectLiteral } from 'typeorm';
import { RegistrationError } from '../errors';

/**
 * The entity an aggregate names: the target itself when the DataSource knows it, else what a
 * lazy target (`() => Comment`, written so that entities can refer to each other in cycles across
 * files) returns. A RegistrationError opened by `what` when neither is an entity of the DataSource.
 */
export function childMetadata(dataSource: DataSource, target: unknown, what: string): EntityMetadata {
  const resolved = resolveTarget(dataSource, target, what);
  if (resolved === undefined) {
    throw new RegistrationError(`${what}: the child ${describeTarget(target)} is not an entity of this DataSource`);
  }
  return dataSource.getMetadata(resolved);
}

function resolveTarget(dataSource: DataSource, target: unknown, what: string): EntityTarget<ObjectLiteral> | undefined {
  if (target === undefined || target === null) return undefined;
  const known = (t: unknown): t is EntityTarget<ObjectLiteral> =>
    t !== undefined && t !== null && dataSource.hasMetadata(t as EntityTarget<ObjectLiteral>);
  if (known(target)) return target;
  if (!isLazy(target)) return undefined;
  let returned: unknown;
  try {
    returned = target();
  } catch (error) {
    throw new RegistrationError(`${what}: the function naming the child threw: ${(error as Error).message}`, { cause: error });
  }
  return known(returned) ? returned : undefined;
}

/** A function of no arguments that is not a class: `() => Comment`, or `function () { return Comment; }`. */
function isLazy(target: unknown): target is () => unknown {
  if (typeof target !== 'function' || target.length !== 0) return false;
  return !/^class[\s{]/.test(Function.prototype.toString.call(target));
}

/** An entity target as messages name it (a lazy one by what it returns, when it returns a name). */
export function describeTarget(target: unknown): string {
  if (typeof target === 'string') return target;
  if (isLazy(target) && !Object.prototype.hasOwnProperty.call(target, 'prototype')) {
    try {
      return `${describeTarget(target())} (returned by a function)`;
    } catch {
      return 'a function that throws';
    }
  }
  if (typeof target === 'function') return (target as { name?: string }).name || 'anonymous class';
  const named = target as { options?: { name?: unknown }; name?: unknown } | null | undefined;
  if (typeof named?.options?.name === 'string') return named.options.name;
  if (typeof named?.name === 'string') return named.name;
  return String(target);
}
