import type { CoalesceLogger as Logger } from '../log';
import { errorMessage } from '../errors';

/** How often a long outage is said again, with the counts so far. */
const REMIND_MS = 60_000;

interface Outage {
  readonly since: number;
  readonly error: string;
  sends: number;
  kept: number;
  lost: number;
  saidAt: number;
}

/**
 * Says once per Redis outage that marks go to the outbox, not once per transaction: the first
 * undelivered send is a warning, later ones are counted (and said again once a minute), and the
 * first delivered send after them ends the outage with its totals.
 */
export class OutageLog {
  private outage: Outage | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether an outage is under way (some send failed, none was delivered since). */
  get open(): boolean {
    return this.outage !== undefined;
  }

  /** `marks` of one send were kept in the outbox, or (`lost`) could not be kept either. */
  undelivered(marks: number, error: unknown, { lost = false, members = [] as readonly string[] } = {}): void {
    const now = this.now();
    let o = this.outage;
    if (!o) {
      o = { since: now, error: errorMessage(error), sends: 0, kept: 0, lost: 0, saidAt: now };
      this.outage = o;
      this.logger.warn(
        { err: o.error, marks },
        'Redis does not take marks: they are kept in the outbox until it does, and the next drain relays them (said once per outage)',
      );
    }
    o.sends += 1;
    if (lost) {
      if (o.lost === 0) {
        this.logger.error(
          { err: errorMessage(error), marks, members: members.slice(0, 20) },
          'marks could not be sent nor kept in the outbox: these parents stay stale until marked again (coalesce mark / rebuild)',
        );
      }
      o.lost += marks;
    } else o.kept += marks;
    if (now - o.saidAt >= REMIND_MS) {
      o.saidAt = now;
      this.logger.warn(
        { sends: o.sends, kept: o.kept, lost: o.lost, forMs: Math.round(now - o.since) },
        'Redis still does not take marks',
      );
    }
  }

  /** A send was delivered: an outage under way is over, and said so with its totals. */
  delivered(): void {
    const o = this.outage;
    if (!o) return;
    this.outage = undefined;
    this.logger.warn(
      { sends: o.sends, kept: o.kept, lost: o.lost, durationMs: Math.round(this.now() - o.since) },
      'Redis takes marks again; the marks kept in the outbox meanwhile are relayed by the next drain',
    );
  }
}
