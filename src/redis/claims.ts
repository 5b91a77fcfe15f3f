import type { Candidate, ClaimRef, Won } from './records';
import { callScript, queueScript, type Arg, type Conn } from './scripts';
import { chunks, MAX_BATCH } from '../util/chunks';

/** A window read at the top of pending: overdue members first, then the hottest with their scores. */
export interface ReadWindow {
  readonly overdue: Buffer[];
  readonly top: (Candidate & { key: Buffer })[];
}

/** Reading windows, claiming them and renewing the leases of what was claimed: the drain's claim side. */
export class Claims {
  constructor(private readonly conn: Conn) {}

  /**
   * The next window: settled parents promoted first, then up to `size` overdue members and the
   * hottest pending ones from rank `offset`. Members come back as raw bytes.
   */
  async readWindow(now: number, size: number, offset: number): Promise<ReadWindow> {
    const flat = await callScript<(Buffer | number)[]>(this.conn, 'readWindow', [now, size, offset]);
    const n = Number(flat[0] ?? 0);
    const overdue = flat.slice(1, 1 + n) as Buffer[];
    const top: (Candidate & { key: Buffer })[] = [];
    for (let i = 1 + n; i + 1 < flat.length; i += 2) {
      top.push({ key: flat[i] as Buffer, score: (flat[i + 1] as Buffer).toString() });
    }
    return { overdue, top };
  }

  /**
   * Claims `candidates` (a checked ZREM and a lease each, in one script call); returns the
   * claim's fencing token and the ones this call won. The first `sample` won report their
   * first-mark time.
   */
  async claim(
    candidates: readonly Candidate[],
    leaseDeadline: number,
    sample = candidates.length,
  ): Promise<{ token: string; won: Won[] }> {
    if (candidates.length === 0) return { token: '', won: [] };
    const args: Arg[] = [leaseDeadline, sample];
    for (const c of candidates) args.push(c.key, c.score);
    const flat = await callScript<(string | number)[]>(this.conn, 'claim', args);
    const won: Won[] = [];
    for (let i = 1; i + 3 < flat.length; i += 4) {
      const since = flat[i + 2];
      won.push({
        index: Number(flat[i]) - 1,
        score: Number(flat[i + 1]),
        since: since === '' || since === undefined ? undefined : Number(since),
        attempts: Number(flat[i + 3]),
      });
    }
    return { token: String(flat[0] ?? ''), won };
  }

  /**
   * Renews the leases of `claims` to `deadline`, in one pipelined round trip; returns the
   * indexes (0-based) of the claims no longer owned.
   */
  async extend(claims: readonly ClaimRef[], deadline: number): Promise<number[]> {
    const pipeline = this.conn.client.pipeline();
    for (const batch of chunks(claims, MAX_BATCH)) {
      queueScript(pipeline, this.conn, 'extend', [deadline, ...batch.flatMap((c) => [c.key, c.token])]);
    }
    const lost: number[] = [];
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([err, reply], b) => {
      if (err) throw err;
      for (const i of reply as number[]) lost.push(b * MAX_BATCH + Number(i) - 1);
    });
    return lost;
  }
}
