import type { DataSource, ObjectLiteral } from 'typeorm';
import { ConfigError } from '../errors';
import type { ParentId, ParentType } from './model';
import type { Registry } from './registry';

/** Most parents below one parent in its chains that `fresh()` waits for. */
export const MAX_CHAIN_BELOW = 10_000;
/** Ids per `IN (...)` of one query. */
const CHUNK = 1_000;

/**
 * The members of the parents below `parent:id` in its chains, one list per level, nearest
 * first: the orders of a customer, then the orders' own chained children, and so on. A
 * recomputed order marks its customer before its ack, so once every order below it is fresh, a
 * customer's own generation covers their changes. Throws a ConfigError past
 * {@link MAX_CHAIN_BELOW}, naming the parent.
 */
export async function chainBelow(
  registry: Registry,
  dataSource: DataSource,
  parent: ParentType,
  id: ParentId,
): Promise<string[][]> {
  const levels: string[][] = [];
  let frontier = new Map<ParentType, ParentId[]>([[parent, [id]]]);
  let total = 0;
  const seen = new Set<string>();
  while (frontier.size > 0) {
    const next = new Map<ParentType, ParentId[]>();
    for (const [above, ids] of frontier) {
      for (const type of registry.parentTypes()) {
        for (const link of registry.chainLinksOf(type)) {
          if (link.parent !== above) continue;
          for (let at = 0; at < ids.length; at += CHUNK) {
            const rows = await dataSource
              .getRepository<ObjectLiteral>(type.metadata.target)
              .createQueryBuilder('c')
              .select(`c.${type.primary.propertyPath}`, 'id')
              .where(`c.${link.column.propertyPath} IN (:...ids)`, { ids: ids.slice(at, at + CHUNK) })
              .getRawMany<{ id: ParentId }>();
            for (const row of rows) {
              const member = registry.encode(type, row.id);
              // A parent reached twice (two paths down) is waited for once, at its first level.
              if (seen.has(member)) continue;
              seen.add(member);
              next.set(type, [...(next.get(type) ?? []), registry.idOf(type, row.id)]);
            }
          }
        }
      }
    }
    const level = [...next].flatMap(([type, ids]) => ids.map((i) => registry.encode(type, i)));
    if (level.length === 0) break;
    total += level.length;
    if (total > MAX_CHAIN_BELOW) {
      throw new ConfigError(
        `fresh(${registry.encode(parent, id)}): more than ${MAX_CHAIN_BELOW} parents lie below it in its chains; ` +
          'wait for a nearer parent (fresh of the order you saved), or pass { chain: false } to wait for its own marks only',
      );
    }
    levels.push(level);
    frontier = next;
  }
  return levels;
}

/**
 * The parents to mark once parents of type `parent` are recomputed, when that type is itself a
 * child (Order -> Customer): their foreign keys read in one query for the whole batch. Returns
 * the ids to mark per parent type.
 */
export async function chainedParents(
  registry: Registry,
  dataSource: DataSource,
  parent: ParentType,
  ids: readonly ParentId[],
): Promise<Map<ParentType, ParentId[]>> {
  const out = new Map<ParentType, ParentId[]>();
  const links = registry.chainLinksOf(parent);
  if (links.length === 0 || ids.length === 0) return out;
  const qb = dataSource
    .getRepository<ObjectLiteral>(parent.metadata.target)
    .createQueryBuilder('c')
    .select(`c.${parent.primary.propertyPath}`, 'id')
    .whereInIds([...ids]);
  links.forEach((link, i) => qb.addSelect(`c.${link.column.propertyPath}`, `fk${i}`));
  const rows = await qb.getRawMany<Record<string, unknown>>();
  links.forEach((link, i) => {
    const found = rows.map((r) => r[`fk${i}`]).filter((v): v is ParentId => v !== null && v !== undefined);
    if (found.length > 0) out.set(link.parent, [...(out.get(link.parent) ?? []), ...found]);
  });
  return out;
}
