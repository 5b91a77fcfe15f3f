import type { DataSource, ObjectLiteral } from 'typeorm';
import type { ParentId, ParentType, Registry } from './registry';

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
