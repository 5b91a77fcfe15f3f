import type { AckEntry, ClaimRef, FailEntry } from './records';
import { callScript, type Arg, type Conn } from './scripts';
import { chunks, MAX_BATCH } from '../util/chunks';

/**
 * How claims end, and how held parents come back: acknowledgements, failures, a worker's own
 * release, reaped leases, due retries, and quiet periods ended early. The drain's settle side.
 */
export class Outcomes {
  constructor(
    private readonly conn: Conn,
    /** The namespace's event channel, where acknowledgements are published for fresh() readers. */
    private readonly channel: string,
  ) {}

  /** Ends the claims of recomputed parents; re-arms those marked meanwhile. */
  async ack(entries: readonly AckEntry[], now: number): Promise<{ acked: number; rearmed: number; superseded: number }> {
    const total = { acked: 0, rearmed: 0, superseded: 0 };
    for (const batch of chunks(entries, MAX_BATCH)) {
      const args: Arg[] = [now, batch.length, this.channel];
      for (const e of batch) args.push(e.key, e.token, e.base);
      for (const e of batch) if (e.waitMs !== undefined) args.push(Math.max(0, Math.round(e.waitMs)));
      const [acked, rearmed, superseded] = await callScript<[number, number, number]>(this.conn, 'ack', args);
      total.acked += acked;
      total.rearmed += rearmed;
      total.superseded += superseded;
    }
    return total;
  }

  /** Records failed recomputes: delayed retry or dead letter. */
  async fail(entries: readonly FailEntry[], now: number): Promise<{ retried: number; dead: number; superseded: number }> {
    const total = { retried: 0, dead: 0, superseded: 0 };
    for (const batch of chunks(entries, MAX_BATCH)) {
      const args = [now, ...batch.flatMap((e) => [e.key, e.token, e.retryAt ?? -1, e.error, e.base])];
      const [retried, dead, superseded] = await callScript<[number, number, number]>(this.conn, 'fail', args);
      total.retried += retried;
      total.dead += dead;
      total.superseded += superseded;
    }
    return total;
  }

  /**
   * Gives leases past their deadline back to pending with their heat; at most `limit`. Each
   * counts as an attempt: at `maxAttempts` the parent is dead-lettered instead.
   */
  async reapExpired(now: number, limit: number, maxAttempts: number): Promise<{ requeued: number; dead: number }> {
    const [requeued, dead] = await callScript<[number, number]>(this.conn, 'requeue', [now, limit, maxAttempts], {
      held: 'leases',
    });
    return { requeued, dead };
  }

  /** Moves retries whose backoff is over back to pending; at most `limit`. */
  async promoteDue(now: number, limit: number): Promise<number> {
    const [requeued] = await callScript<[number, number]>(this.conn, 'requeue', [now, limit, 0], { held: 'delayed' });
    return requeued;
  }

  /** Gives back to pending claims a worker holds and will not run, checked by token. */
  async release(claims: readonly ClaimRef[], now: number): Promise<number> {
    let released = 0;
    for (const batch of chunks(claims, MAX_BATCH)) {
      const pairs = batch.flatMap((c) => [c.key, c.token]);
      const [requeued] = await callScript<[number, number]>(this.conn, 'requeue', [now, batch.length, 0, ...pairs], {
        held: 'leases',
      });
      released += requeued;
    }
    return released;
  }

  /**
   * Ends the minimum interval of the parents waiting one out (in `settling`, listed in
   * `cooling`), but for those in `except`: they are pending at once. Returns the members moved.
   */
  async endCooling(except: ReadonlySet<string>): Promise<string[]> {
    const listed: string[] = [];
    for (let start = 0; ; start += MAX_BATCH) {
      const page = await this.conn.client.zrange(this.conn.keys.cooling, start, start + MAX_BATCH - 1);
      listed.push(...page);
      if (page.length < MAX_BATCH) break;
    }
    const moved: string[] = [];
    for (const batch of chunks(
      listed.filter((m) => !except.has(m)),
      MAX_BATCH,
    )) {
      const flags = await callScript<number[]>(this.conn, 'endCooling', batch);
      batch.forEach((member, i) => flags[i] === 1 && moved.push(member));
    }
    return moved;
  }

  /** Ends the quiet period of those of `members` that are settling, now; returns how many were. */
  async promoteNow(members: readonly string[]): Promise<number> {
    let moved = 0;
    for (const batch of chunks(members, MAX_BATCH)) moved += await callScript<number>(this.conn, 'promote', batch);
    return moved;
  }
}
