/** Most members sent in one script call; larger inputs are split so no call is unbounded. */
export const MAX_BATCH = 500;

/** `items` in slices of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
