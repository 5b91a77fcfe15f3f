import { isUtf8 } from 'node:buffer';
import type { ColumnMetadata } from '../typeorm-types';
import { MalformedMemberError, RegistrationError, quoteMember } from '../errors';

/** A parent's primary key value as recomputes receive it. */
export type ParentId = string | number;

/**
 * How a parent type's ids are spelled in members, so that one parent has exactly one member:
 * `int` safe integers in decimal, `bigint` integers of any size in decimal (handed to recomputes
 * as strings, as TypeORM does), `uuid` lowercase, `string` as given.
 */
export type IdKind = 'int' | 'bigint' | 'uuid' | 'string';

const INT_TYPES = new Set(['int', 'int2', 'int4', 'integer', 'smallint', 'tinyint', 'mediumint', 'number']);
const BIGINT_TYPES = new Set(['bigint', 'int8', 'int64', 'unsigned big int']);
const DIGITS = /^-?\d+$/;

/** The id kind of a primary column. */
export function idKindOf(column: ColumnMetadata): IdKind {
  const type = column.type;
  if (type === Number) return 'int';
  if (typeof type === 'string') {
    if (INT_TYPES.has(type)) return 'int';
    if (BIGINT_TYPES.has(type)) return 'bigint';
    if (type === 'uuid') return 'uuid';
  }
  return 'string';
}

/** A value as an error message shows it (bigints and symbols included, which JSON cannot show). */
export function describeValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/** The canonical spelling of `id` for a parent type, or a RegistrationError naming it. */
export function canonicalId(type: string, kind: IdKind, id: unknown): string {
  const bad = (why: string): never => {
    throw new RegistrationError(`${type}: id ${describeValue(id)} ${why}`);
  };
  switch (kind) {
    case 'int': {
      let n: unknown = id;
      if (typeof id === 'string' && DIGITS.test(id)) n = Number(id);
      else if (typeof id === 'bigint') n = Number(id);
      if (typeof n !== 'number' || !Number.isInteger(n)) return bad('is not an integer');
      if (!Number.isSafeInteger(n) || (typeof id === 'bigint' && BigInt(n) !== id)) {
        return bad(`is outside the safe integer range (±${Number.MAX_SAFE_INTEGER}) of an integer key`);
      }
      return String(n === 0 ? 0 : n);
    }
    case 'bigint': {
      if (typeof id === 'bigint') return id.toString();
      if (typeof id === 'number' && Number.isSafeInteger(id)) return String(id === 0 ? 0 : id);
      if (typeof id === 'string' && DIGITS.test(id)) return BigInt(id).toString();
      return bad('is not an integer');
    }
    case 'uuid':
    case 'string': {
      if (typeof id !== 'string' && typeof id !== 'number' && typeof id !== 'bigint') return bad('is not a string or number');
      const s = String(id);
      if (s === '') return bad('is empty');
      return kind === 'uuid' ? s.toLowerCase() : s;
    }
  }
}

/** The id a recompute receives for a canonical id string. */
export function idValue(kind: IdKind, canonical: string): ParentId {
  return kind === 'int' ? Number(canonical) : canonical;
}

/** What a member read from Redis turns out to be. */
export type Classified<P> =
  /** A parent of a registered type, spelled canonically. */
  | { readonly kind: 'parent'; readonly member: string; readonly parent: P; readonly id: ParentId }
  /** A parent of a registered type spelled another way (`Order:00042`): its heat belongs to `canonical`. */
  | { readonly kind: 'alias'; readonly member: string; readonly parent: P; readonly canonical: string }
  /** A type this process does not register but another one of the namespace does: not ours to claim. */
  | { readonly kind: 'foreign'; readonly member: string }
  /** Nothing any process can recompute: dead-letter it once, with the reason. */
  | { readonly kind: 'malformed'; readonly member: string; readonly error: MalformedMemberError };

/** A registered parent type as members need it. */
export interface MemberType {
  readonly name: string;
  readonly idKind: IdKind;
}

/**
 * Classifies a member read from Redis as raw bytes. `types` are this process's parent types,
 * `foreign` the types other processes of the namespace registered.
 */
export function classify<P extends MemberType>(
  key: Buffer,
  types: ReadonlyMap<string, P>,
  foreign: ReadonlySet<string>,
): Classified<P> {
  const member = key.toString('utf8');
  const malformed = (reason: string): Classified<P> => ({
    kind: 'malformed',
    member,
    error: new MalformedMemberError(member, reason),
  });
  if (!isUtf8(key)) return malformed(`not valid UTF-8 (bytes ${key.toString('hex').slice(0, 64)})`);
  const colon = member.indexOf(':');
  if (colon <= 0) return malformed('expected "<Type>:<id>"');
  const name = member.slice(0, colon);
  const parent = types.get(name);
  if (!parent) {
    if (foreign.has(name)) return { kind: 'foreign', member };
    const shown = name.length > 64 ? `${name.slice(0, 64)}... (${name.length} characters)` : name;
    return malformed(`unknown parent type ${shown} (known: ${[...types.keys()].join(', ') || 'none'})`);
  }
  const raw = member.slice(colon + 1);
  if (raw === '') return malformed('empty id');
  if ((parent.idKind === 'int' || parent.idKind === 'bigint') && !DIGITS.test(raw)) {
    return malformed(`id ${quoteMember(raw)} of ${name} is not an integer`);
  }
  let canonical: string;
  try {
    canonical = canonicalId(name, parent.idKind, raw);
  } catch (error) {
    return malformed((error as Error).message);
  }
  if (canonical !== raw) return { kind: 'alias', member, parent, canonical: `${name}:${canonical}` };
  return { kind: 'parent', member, parent, id: idValue(parent.idKind, canonical) };
}
