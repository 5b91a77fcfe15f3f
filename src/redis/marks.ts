import type { MarkEntry } from './records';
import { callScript, queueScript, type Arg, type Conn } from './scripts';
import { chunks, MAX_BATCH } from '../util/chunks';

/** What a mark call did. */
export interface Marked {
  /** Distinct parents marked. */
  readonly marked: number;
  /** The namespace's epoch as the marks found it ('' when Redis holds none). */
  readonly epoch: string;
  /** The highest generation given (a value of the namespace's fence counter; 0 when none). */
  readonly generation: number;
}

/** Adds heat to parents: the only write capture and delivery make to Redis. */
export class Marks {
  constructor(private readonly conn: Conn) {}

  /** Marks `entries` in one round trip (one script call per {@link MAX_BATCH} parents, pipelined). */
  async mark(entries: readonly MarkEntry[], now: number): Promise<Marked> {
    const batches = chunks(entries, MAX_BATCH);
    const args = (batch: readonly MarkEntry[]): Arg[] => [now, ...batch.flatMap((e) => [e.member, e.increment, e.base])];
    if (batches.length <= 1) {
      const [marked, epoch, generation] = await callScript<[number, string, number]>(this.conn, 'mark', args(batches[0] ?? []));
      return { marked, epoch, generation: Number(generation) };
    }
    const pipeline = this.conn.client.pipeline();
    for (const batch of batches) queueScript(pipeline, this.conn, 'mark', args(batch));
    const total = { marked: 0, epoch: '', generation: 0 };
    for (const [err, reply] of (await pipeline.exec()) ?? []) {
      if (err) throw err;
      const [n, e, g] = reply as [number, string, number];
      total.marked += n;
      total.epoch = e;
      total.generation = Math.max(total.generation, Number(g));
    }
    return total;
  }
}
