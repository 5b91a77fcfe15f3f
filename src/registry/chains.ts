import type { ParentType } from './model';

/**
 * A cycle of parent chains among `types` (A's recompute marks B, B's marks A: they would mark
 * each other for ever), first type repeated at its end; undefined when there is none. `next`
 * gives the types a type's recompute marks.
 */
export function chainCycle(
  types: readonly ParentType[],
  next: (type: ParentType) => readonly ParentType[],
): ParentType[] | undefined {
  const done = new Set<ParentType>();
  const visit = (type: ParentType, path: ParentType[]): ParentType[] | undefined => {
    if (path.includes(type)) return [...path.slice(path.indexOf(type)), type];
    if (done.has(type)) return undefined;
    for (const up of next(type)) {
      const cycle = visit(up, [...path, type]);
      if (cycle) return cycle;
    }
    done.add(type);
    return undefined;
  };
  for (const type of types) {
    const cycle = visit(type, []);
    if (cycle) return cycle;
  }
  return undefined;
}
