import type { CoalescerStats } from '../coalescer';
import { errorMessage } from '../errors';
import { sampleOf, type SamplePoint } from './state';

/** A fixed number of the latest items; the oldest is overwritten when full. */
export class Ring<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  /** The items, oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = (this.next - this.size + this.capacity) % this.capacity;
    for (let i = 0; i < this.size; i += 1) out.push(this.items[(start + i) % this.capacity] as T);
    return out;
  }
}

/** What the sampler calls after each sample: the point, and the stats it came from when it was read. */
export type SampleListener = (point: SamplePoint, stats: CoalescerStats | undefined) => Promise<void> | void;

/**
 * Reads `stats()` every `intervalMs` into a ring of the last `capacity` points. One sample at a
 * time: the next is scheduled when the previous one (and its listener) is done, so a slow Redis
 * spaces samples out instead of piling reads on it.
 */
export class Sampler {
  private readonly ring: Ring<SamplePoint>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly read: () => Promise<CoalescerStats>,
    private readonly clock: () => number,
    private readonly intervalMs: number,
    capacity: number,
    private readonly listener: SampleListener,
    private readonly onListenerError: (error: unknown) => void,
  ) {
    this.ring = new Ring(capacity);
  }

  /** Takes the first sample now; resolves once it is in the ring. */
  start(): Promise<void> {
    return this.tick();
  }

  /** The points, oldest first. */
  history(): SamplePoint[] {
    return this.ring.toArray();
  }

  /** Stops sampling; resolves when a sample being taken is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private tick(): Promise<void> {
    this.running = this.sample().finally(() => {
      this.running = undefined;
      if (this.stopped) return;
      this.timer = setTimeout(() => void this.tick(), this.intervalMs);
      // The dashboard's server keeps the process alive, not its sampler.
      this.timer.unref();
    });
    return this.running;
  }

  private async sample(): Promise<void> {
    const at = this.clock();
    let point: SamplePoint;
    let stats: CoalescerStats | undefined;
    try {
      stats = await this.read();
      point = sampleOf(stats, at);
    } catch (error) {
      point = { at, error: errorMessage(error) };
    }
    this.ring.push(point);
    try {
      await this.listener(point, stats);
    } catch (error) {
      this.onListenerError(error);
    }
  }
}
