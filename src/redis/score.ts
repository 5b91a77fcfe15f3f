/**
 * Scores of pending parents: a priority tier's base plus the heat (changes waiting). The scripts
 * take TIER from here (`--- @const TIER` in includes/score.lua).
 */

/** Distance between two priority tiers; heat never reaches it. */
export const TIER = 1e12;

/** Drain order of parent types: every pending `critical` parent is claimed before any `high`, and so on. */
export type Priority = 'critical' | 'high' | 'normal' | 'low';

/** Score base per priority tier. */
export const PRIORITY_BASE: Readonly<Record<Priority, number>> = Object.freeze({
  critical: 3 * TIER,
  high: 2 * TIER,
  normal: TIER,
  low: 0,
});

/** Heat of a pending score: its distance from its tier's base. */
export function heatOf(score: number): number {
  return score - Math.min(Math.floor(score / TIER), 3) * TIER;
}
