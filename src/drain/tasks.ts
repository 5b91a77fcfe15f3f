import type { MarkEntry } from '../redis/records';
import { heatOf } from '../redis/score';
import type { ParentType } from '../registry/model';
import type { Claimed } from './claimer';
import type { Claim } from './leases';
import type { DrainParts, Round } from './parts';
import type { Item, Settler } from './settle';

/** A unit of work: one parent, or a batch of one type for recomputeMany. */
export interface Task {
  readonly parent: ParentType;
  readonly items: readonly Item[];
}

/**
 * Groups a window's claims into tasks: batches of one type for recomputeMany, single parents
 * otherwise. Malformed members are dead-lettered at once; members spelled another way than
 * their parent's canonical member pass their heat to it.
 */
export async function tasksOf(parts: DrainParts, settler: Settler, claimed: readonly Claimed[], round: Round): Promise<Task[]> {
  const tasks: Task[] = [];
  const batches = new Map<ParentType, Item[]>();
  const malformed: { claim: Claim; error: unknown }[] = [];
  const aliases: Alias[] = [];
  for (const { claim, what } of claimed) {
    if (what.kind === 'malformed') {
      malformed.push({ claim, error: what.error });
      continue;
    }
    if (what.kind === 'alias') {
      aliases.push({ claim, parent: what.parent, canonical: what.canonical });
      continue;
    }
    const { parent } = what;
    const item = { claim, id: what.id };
    if (!parent.recomputeMany) {
      tasks.push({ parent, items: [item] });
      continue;
    }
    const batch = batches.get(parent) ?? [];
    batch.push(item);
    if (batch.length >= parent.batchSize) {
      tasks.push({ parent, items: batch });
      batches.delete(parent);
    } else {
      batches.set(parent, batch);
    }
  }
  for (const [parent, items] of batches) tasks.push({ parent, items });
  if (malformed.length > 0) await settler.fail(undefined, malformed, round.result);
  if (aliases.length > 0) await redirect(parts, aliases, round);
  return tasks;
}

interface Alias {
  readonly claim: Claim;
  readonly parent: ParentType;
  readonly canonical: string;
}

/** Moves the heat of aliases (`Order:00042`) to their canonical member, then ends their claims. */
async function redirect(parts: DrainParts, aliases: readonly Alias[], { result, acks }: Round): Promise<void> {
  const marks: MarkEntry[] = aliases.map((a) => ({
    member: a.canonical,
    increment: Math.max(1, heatOf(a.claim.score)),
    base: a.parent.base,
  }));
  await parts.marks.mark(marks, parts.clock.now());
  parts.logger.warn(
    { members: aliases.slice(0, 20).map((a) => `${a.claim.member} -> ${a.canonical}`), count: aliases.length },
    'members not spelled canonically: their heat moved to the canonical member',
  );
  for (const a of aliases) acks.add({ key: a.claim.key, token: a.claim.token, base: a.parent.base }, a.claim);
  result.redirected += aliases.length;
}
