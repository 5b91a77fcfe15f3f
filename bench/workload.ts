/** How marks spread over the parents. */
export type Distribution = 'uniform' | 'zipf';

/** Every distribution, in the order the bench runs them. */
export const DISTRIBUTIONS: readonly Distribution[] = ['uniform', 'zipf'];

/**
 * A seeded pseudo-random generator (mulberry32) returning floats in [0, 1): the same seed gives
 * the same workload on every run and on both sides of a comparison.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `marks` parent ids in 1..`parents`, drawn from `distribution` with `seed`. Zipf has exponent 1:
 * parent k is drawn with a weight of 1/k, so a few parents take most of the marks, as the
 * orders of a busy shop or the posts of a forum do.
 */
export function markIds(distribution: Distribution, marks: number, parents: number, seed: number): number[] {
  const random = seededRandom(seed);
  if (distribution === 'uniform') return Array.from({ length: marks }, () => 1 + Math.floor(random() * parents));
  const cdf = new Float64Array(parents);
  let sum = 0;
  for (let k = 1; k <= parents; k += 1) cdf[k - 1] = sum += 1 / k;
  return Array.from({ length: marks }, () => {
    const u = random() * sum;
    let lo = 0;
    let hi = parents - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cdf[mid] as number) < u) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  });
}

/** `items` cut into consecutive slices of `size`. */
export function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
