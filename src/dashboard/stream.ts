import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Activity } from './activity';

/** How often buffered activity is written to the streams, in ms. */
const FLUSH_MS = 250;
/** Most activity events written per flush; the rest are counted in one `skipped` event. */
const MAX_PER_FLUSH = 100;
/** A comment line this often keeps proxies and browsers from closing an idle stream. */
const HEARTBEAT_MS = 15_000;
/** What a browser waits before reconnecting a dropped stream, in ms. */
const RETRY_MS = 2000;

/**
 * The Server-Sent Events streams of `GET /api/events`. Samples and states go out as they come;
 * recomputes and failures are buffered and written every {@link FLUSH_MS} ms, at most
 * {@link MAX_PER_FLUSH} of them, so a drain of thousands of parents per second costs the page
 * a few writes per second (the others are counted in a `skipped` event).
 */
export class EventStream {
  private readonly clients = new Set<ServerResponse>();
  private buffered: Activity[] = [];
  private skipped = { recomputed: 0, failed: 0 };
  private flushTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  /** Streams open now. */
  get size(): number {
    return this.clients.size;
  }

  /** Starts a stream on `res`; it lasts until the client goes or {@link close}. */
  open(req: IncomingMessage, res: ServerResponse, headers: Readonly<Record<string, string>>): void {
    res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8',
      Connection: 'keep-alive',
      // Proxies that buffer responses would hold the events back.
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    this.clients.add(res);
    req.on('close', () => {
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopHeartbeat();
    });
    this.heartbeat ??= setInterval(() => this.write(': ping\n\n'), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Sends one event to every stream. */
  send(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    this.write(format(event, data));
  }

  /** Buffers one activity event for the next flush. */
  activity(a: Activity): void {
    if (this.clients.size === 0) return;
    if (a.type !== 'drained' && this.buffered.length >= MAX_PER_FLUSH) this.skipped[a.type] += 1;
    else this.buffered.push(a);
    this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Ends every stream. */
  close(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.stopHeartbeat();
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  private flush(): void {
    this.flushTimer = undefined;
    const events = this.buffered;
    const skipped = this.skipped;
    this.buffered = [];
    this.skipped = { recomputed: 0, failed: 0 };
    let text = events.map((a) => format(a.type, a)).join('');
    if (skipped.recomputed + skipped.failed > 0) text += format('skipped', skipped);
    if (text) this.write(text);
  }

  private write(text: string): void {
    for (const res of this.clients) res.write(text);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}

/** One SSE message; JSON never holds a raw newline, so `data` is one line. */
function format(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
