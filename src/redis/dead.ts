import type { DeadEntry } from './records';
import { callScript, type Conn } from './scripts';
import { chunks, MAX_BATCH } from '../util/chunks';

/** The dead-letter set: parents whose recompute kept failing, listed, revived or purged. */
export class DeadSet {
  constructor(private readonly conn: Conn) {}

  /** Dead-lettered parents, oldest first. */
  async list(offset: number, count: number): Promise<DeadEntry[]> {
    const k = this.conn.keys;
    // As bytes: a member that is not UTF-8 still finds its record.
    const members = await this.conn.client.zrangeBuffer(k.dead, offset, offset + count - 1);
    if (members.length === 0) return [];
    const records = await this.conn.client.hmgetBuffer(k.deadInfo, ...members);
    return members.map((member, i) => parseDead(member.toString(), records[i]?.toString() ?? null));
  }

  /** Gives dead parents a fresh start: the named ones (any number), or up to `limit` of the oldest. */
  async revive(members: readonly string[] | 'all', now: number, limit: number): Promise<number> {
    if (members === 'all') return callScript<number>(this.conn, 'revive', [now, limit]);
    let revived = 0;
    for (const batch of chunks(members, MAX_BATCH))
      revived += await callScript<number>(this.conn, 'revive', [now, limit, ...batch]);
    return revived;
  }

  /**
   * Removes dead parents and every trace of them (records, attempts, generations): the named
   * ones (any number; those not dead are left alone), or up to `limit` of the oldest.
   */
  async purge(members: readonly string[] | 'all', limit: number): Promise<number> {
    if (members === 'all') return callScript<number>(this.conn, 'purge', [limit]);
    let removed = 0;
    for (const batch of chunks(members, MAX_BATCH)) removed += await callScript<number>(this.conn, 'purge', [limit, ...batch]);
    return removed;
  }
}

/** A dead-letter record as stored (JSON), or what can be said of an unreadable one. */
export function parseDead(member: string, record: string | null): DeadEntry {
  try {
    const r = JSON.parse(record ?? '{}') as Partial<Record<keyof DeadEntry, unknown>>;
    return {
      member,
      error: typeof r.error === 'string' ? r.error : 'unknown',
      attempts: Number(r.attempts ?? 0),
      score: Number(r.score ?? 0),
      at: Number(r.at ?? 0),
    };
  } catch {
    return { member, error: 'unreadable dead-letter record', attempts: 0, score: 0, at: 0 };
  }
}
