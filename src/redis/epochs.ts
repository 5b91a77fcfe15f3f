import type { EpochCheck, TypePolicy } from './records';
import { allKeys } from './keys';
import { callScript, type Conn } from './scripts';

/** What a process knows of its own marks, for an epoch check. */
export interface OwnMarks {
  /** Its writer id ('' for none). */
  readonly writer: string;
  /** The highest generation Redis gave its marks under the known epoch (0 when none). */
  readonly floor: number;
  /** Whether a mark's reply already showed Redis went back in time under the known epoch. */
  readonly sawBack: boolean;
}

const NO_MARKS: OwnMarks = { writer: '', floor: 0, sawBack: false };

/**
 * What a namespace keeps of itself in Redis: its epoch and fence counter (checked for data loss),
 * the rebuild cursors that follow a loss, the type policies the scripts read, and clearing it all.
 */
export class Epochs {
  constructor(private readonly conn: Conn) {}

  /**
   * Checks the namespace's epoch and fence counter against `floor`, and the caller's writer entry
   * against `own`; see checkEpoch-5.lua.
   */
  async check(
    known: string,
    candidate: string,
    floor: number,
    rebuildTypes: readonly string[],
    own: OwnMarks = NO_MARKS,
  ): Promise<EpochCheck> {
    const [status, epoch, policies, rebuilding, fence] = await callScript<[string, string, number, number, string]>(
      this.conn,
      'checkEpoch',
      [known, candidate, floor, own.sawBack ? 1 : 0, own.writer, own.floor, ...rebuildTypes],
    );
    return {
      status: status as EpochCheck['status'],
      epoch,
      policies: Number(policies) === 1,
      rebuilding: Number(rebuilding),
      fence: Number(fence),
    };
  }

  /** Parent types whose rebuild after a data loss is unfinished, with the last id marked ('' before the first). */
  async rebuildCursors(): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.conn.client.hgetall(this.conn.keys.rebuild)));
  }

  /** Moves a rebuild cursor from `from` to `to` (undefined: the type is done); false when another process moved it. */
  async advanceRebuild(type: string, from: string, to: string | undefined): Promise<boolean> {
    return (await callScript<number>(this.conn, 'advanceRebuild', [type, from, to ?? '', to === undefined ? 'done' : ''])) === 1;
  }

  /** Publishes how each parent type is marked (priority, settleMs, maxWaitMs, minIntervalMs) for the scripts. */
  async writePolicies(policies: ReadonlyMap<string, TypePolicy>): Promise<void> {
    if (policies.size === 0) return;
    const fields: string[] = [];
    for (const [type, p] of policies) fields.push(type, `${p.base}|${p.settleMs}|${p.maxWaitMs ?? ''}|${p.minIntervalMs}`);
    await this.conn.client.hset(this.conn.keys.policy, ...fields);
  }

  /** Parent types some process of the namespace registered (their policies are published). */
  async policyTypes(): Promise<Set<string>> {
    return new Set(await this.conn.client.hkeys(this.conn.keys.policy));
  }

  /** Deletes every key of the namespace but its fence counter: fencing tokens and generations never repeat in a namespace. */
  async clear(): Promise<void> {
    await this.conn.client.del(...allKeys(this.conn.keys).filter((key) => key !== this.conn.keys.fence));
  }
}
