import { isIP } from 'node:net';
import { z } from 'zod';
import { configError } from '../config';
import { ConfigError } from '../errors';
import type { Runner } from '../runner/runner';

/** Options of {@link serveDashboard}. */
export interface DashboardOptions {
  /** Port to listen on; 0 picks a free one (the returned server says which). */
  port: number;
  /**
   * Interface to listen on. Anything but a loopback address needs a `token`.
   * @defaultValue '127.0.0.1'
   */
  host?: string;
  /**
   * Secret every request must carry, as `Authorization: Bearer <token>` or, for the page and
   * the event stream, `?token=<token>` (the page then sends it with its own requests). Printable
   * ASCII without spaces. Required when `host` is not a loopback address.
   * @defaultValue none: no token asked (loopback only)
   */
  token?: string;
  /** A runner of this process whose status and tick counts the page shows. */
  runner?: Pick<Runner, 'status' | 'counts'>;
  /**
   * How often the server samples `stats()` for the plots and the live figures, in ms.
   * @defaultValue 2000
   */
  sampleMs?: number;
  /**
   * How far back the plots go, in ms (the server keeps `historyMs / sampleMs` samples).
   * @defaultValue 600000 (10 minutes)
   */
  historyMs?: number;
  /**
   * How many of the hottest parents the page lists.
   * @defaultValue 20
   */
  top?: number;
  /**
   * How many dead parents the page lists (oldest first; the total is always shown).
   * @defaultValue 50
   */
  deadLimit?: number;
  /**
   * Most pending members read to count pending parents per type; a larger pending set is
   * sampled and the page says so.
   * @defaultValue 10000
   */
  typeScanLimit?: number;
}

/** Defaults of the optional dashboard options. */
export const DASHBOARD_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  sampleMs: 2000,
  historyMs: 600_000,
  top: 20,
  deadLimit: 50,
  typeScanLimit: 10_000,
});

/** Dashboard options after validation. */
export type ResolvedDashboardOptions = Readonly<
  Required<Omit<DashboardOptions, 'token' | 'runner'>> & Pick<DashboardOptions, 'token' | 'runner'>
>;

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const schema = z.object({
  port: int(0, 65_535),
  host: z.string().min(1),
  token: z
    .string()
    .regex(/^[\x21-\x7e]+$/, 'expected printable ASCII without spaces')
    .optional(),
  sampleMs: int(100, 3_600_000),
  historyMs: int(1000, 86_400_000),
  top: int(1, 1000),
  deadLimit: int(1, 1000),
  typeScanLimit: int(1, 10_000_000),
});

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  // An IPv4 address written in IPv6 form, ::ffff:127.0.0.1.
  return h.startsWith('::ffff:127.');
}

/** Validates dashboard options; a bad one throws a ConfigError naming it. */
export function resolveDashboardOptions(options: DashboardOptions): ResolvedDashboardOptions {
  if (options === null || typeof options !== 'object') throw new ConfigError('dashboard options must be an object');
  const { runner, ...rest } = options;
  const input = { ...DASHBOARD_DEFAULTS, ...stripUndefined(rest) };
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw configError(parsed.error, input, 'dashboard option');
  const v = parsed.data;
  if (v.token === undefined && !isLoopback(v.host)) {
    throw new ConfigError(
      `invalid dashboard option "host" = ${JSON.stringify(v.host)}: not a loopback address, so a "token" is required ` +
        '(anyone who can reach the port could otherwise retry or purge dead parents); set one, or listen on 127.0.0.1',
    );
  }
  if (v.historyMs < v.sampleMs) {
    throw new ConfigError(`invalid dashboard option "historyMs" = ${v.historyMs}: must be at least sampleMs (${v.sampleMs})`);
  }
  return Object.freeze({ ...v, ...(runner ? { runner } : {}) });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, value]) => value !== undefined)) as Partial<T>;
}
