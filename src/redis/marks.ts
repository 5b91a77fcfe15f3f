import type { MarkEntry } from './records';
import { callScript, queueScript, type Arg, type Conn } from './scripts';
import { chunks, MAX_BATCH } from '../util/chunks';
import { within } from '../util/within';

/** What a mark call did. */
export interface Marked {
  /** Distinct parents marked. */
  readonly marked: number;
  /** The namespace's epoch as the marks found it ('' when Redis holds none). */
  readonly epoch: string;
  /** The highest generation given (a value of the namespace's fence counter; 0 when none). */
  readonly generation: number;
  /** The writer's generation in Redis before this call (undefined when Redis had none, or no writer marked). */
  readonly before?: number;
}

/** Adds heat to parents: the only write capture and delivery make to Redis. */
export class Marks {
  /**
   * @param writer the marking process's id, whose last generation each mark keeps in Redis
   *   ('' for none); the Marks of one process share it.
   */
  constructor(
    private readonly conn: Conn,
    private readonly writer = '',
  ) {}

  /**
   * Takes this writer's entry out of Redis (its process is closing: it marks nothing more). Gives
   * up after `timeoutMs`: an entry left behind is pruned by the epoch checks.
   */
  async leave(timeoutMs = 1_000): Promise<void> {
    if (this.writer === '') return;
    const gone = this.conn.client.hdel(this.conn.keys.writers, this.writer);
    gone.catch(() => undefined);
    await within(gone, timeoutMs, () => `Redis did not answer within ${timeoutMs} ms`);
  }

  /** Marks `entries` in one round trip (one script call per {@link MAX_BATCH} parents, pipelined). */
  async mark(entries: readonly MarkEntry[], now: number): Promise<Marked> {
    const batches = chunks(entries, MAX_BATCH);
    const args = (batch: readonly MarkEntry[]): Arg[] => [
      now,
      this.writer,
      ...batch.flatMap((e) => [e.member, e.increment, e.base]),
    ];
    if (batches.length <= 1) {
      const reply = await callScript<Reply>(this.conn, 'mark', args(batches[0] ?? []));
      return { marked: reply[0], epoch: reply[1], generation: Number(reply[2]), before: generationOf(reply[3]) };
    }
    const pipeline = this.conn.client.pipeline();
    for (const batch of batches) queueScript(pipeline, this.conn, 'mark', args(batch));
    const total: { marked: number; epoch: string; generation: number; before?: number } = { marked: 0, epoch: '', generation: 0 };
    const replies = (await pipeline.exec()) ?? [];
    for (const [i, [err, reply]] of replies.entries()) {
      if (err) throw err;
      const [n, e, g, before] = reply as Reply;
      total.marked += n;
      total.epoch = e;
      total.generation = Math.max(total.generation, Number(g));
      // The calls of one pipeline run in order: the first one's tells what Redis had before.
      if (i === 0) total.before = generationOf(before);
    }
    return total;
  }
}

/** A mark call's reply: marked, epoch, generation, the writer's generation before ('' for none). */
type Reply = [number, string, number | string, string];

/** A generation from a reply ('' or missing: none). */
function generationOf(value: string | undefined): number | undefined {
  const n = Number(value);
  return n > 0 ? n : undefined;
}
