import type { DataSource, ObjectLiteral } from 'typeorm';
import type { ParentId, ParentType } from '../registry/model';

/**
 * One page of a parent type's ids in primary key order, after `after` (keyset pagination:
 * memory stays one page however large the table).
 */
export async function pageIds(
  dataSource: DataSource,
  parent: ParentType,
  after: ParentId | undefined,
  limit: number,
): Promise<ParentId[]> {
  const repo = dataSource.getRepository<ObjectLiteral>(parent.metadata.target);
  const key = parent.primary.propertyPath;
  const qb = repo.createQueryBuilder('p').select(`p.${key}`, 'id').orderBy(`p.${key}`, 'ASC').limit(limit);
  if (after !== undefined) qb.where(`p.${key} > :after`, { after });
  const rows = await qb.getRawMany<{ id: ParentId }>();
  return rows.map((r) => r.id);
}

/**
 * Marks every row of a parent type, page by page from `after`, calling `onPage` after each.
 * Returns how many were marked.
 */
export async function markAll(
  dataSource: DataSource,
  parent: ParentType,
  mark: (ids: ParentId[]) => Promise<unknown>,
  options: { batch: number; after?: ParentId; onPage?: (marked: number, last: ParentId) => void | Promise<void> },
): Promise<number> {
  let marked = 0;
  let last = options.after;
  for (;;) {
    const ids = await pageIds(dataSource, parent, last, options.batch);
    if (ids.length === 0) break;
    await mark(ids);
    marked += ids.length;
    last = ids[ids.length - 1] as ParentId;
    await options.onPage?.(marked, last);
    if (ids.length < options.batch) break;
  }
  return marked;
}
