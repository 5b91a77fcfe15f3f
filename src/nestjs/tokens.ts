import { Inject } from '@nestjs/common';
import { Coalescer } from '../index';

/** The name of the Coalescer a module makes when it is given none. */
export const DEFAULT_COALESCER = 'default';

/**
 * The injection token of a module's Coalescer: the `Coalescer` class for the default one (so
 * `app.get(Coalescer)` finds it), a string for a named one.
 */
export function getCoalescerToken(name: string = DEFAULT_COALESCER): string | typeof Coalescer {
  return name === DEFAULT_COALESCER ? Coalescer : `typeorm-coalesce:coalescer:${name}`;
}

/** Injects the Coalescer of the `CoalesceModule` named `name` (the default one when left out). */
export function InjectCoalescer(name?: string): PropertyDecorator & ParameterDecorator {
  return Inject(getCoalescerToken(name));
}

/** Token of a module's resolved options (internal). */
export const optionsToken = (name: string): string => `typeorm-coalesce:options:${name}`;

/** Token of a module's lifecycle, which owns its runner (internal). */
export const lifecycleToken = (name: string): string => `typeorm-coalesce:lifecycle:${name}`;
