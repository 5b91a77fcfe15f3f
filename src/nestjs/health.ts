import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { ConfigError, type Coalescer, type CoalescerStats } from '../index';
import { within } from '../util/within';
import { getCoalescerToken } from './tokens';

/** Options of {@link CoalesceHealthIndicator.isHealthy}. */
export interface CoalesceHealthOptions {
  /** The `CoalesceModule` to check, by its `name`. @defaultValue the default one */
  name?: string;
  /** Down when more parents than this wait for a recompute. @defaultValue no limit */
  maxPending?: number;
  /** Down when the oldest waiting parent was first marked longer ago than this, in ms. @defaultValue no limit */
  maxOldestPendingMs?: number;
  /**
   * Down when Redis and the database have not both answered (and the sizes been read) within
   * this many ms.
   * @defaultValue 1000
   */
  timeoutMs?: number;
}

/** The figures a check reports, under its key, beside `status`. */
export interface CoalesceHealthDetails {
  status: 'up' | 'down';
  namespace: string;
  /** Why it is down. */
  message?: string;
  pending?: number;
  inflight?: number;
  delayed?: number;
  dead?: number;
  oldestPendingMs?: number | null;
}

/** A terminus health indicator result: the details under the check's key. */
export type CoalesceHealthResult<Key extends string = string> = Record<Key, CoalesceHealthDetails>;

/** The parts of `@nestjs/terminus` this indicator looks for. */
interface Terminus {
  HealthIndicatorService?: unknown;
  HealthCheckError?: new (message: string, causes: unknown) => Error;
}

/**
 * A health indicator for `@nestjs/terminus`: up when Redis and the database answer and the
 * namespace's backlog is within the limits given. Provided by every `CoalesceModule`; use it in
 * a `HealthCheckService.check([...])` list.
 *
 * A failed check resolves with `status: 'down'` on terminus 11 and later; on terminus 10, whose
 * checks only see thrown errors, it throws terminus' `HealthCheckError` carrying the same result.
 */
@Injectable()
export class CoalesceHealthIndicator {
  constructor(@Inject(ModuleRef) private readonly moduleRef: ModuleRef) {}

  /** Checks the Coalescer of the module `options.name`; its result goes under `key`. */
  async isHealthy<Key extends string>(key: Key, options: CoalesceHealthOptions = {}): Promise<CoalesceHealthResult<Key>> {
    const { name, maxPending, maxOldestPendingMs, timeoutMs = 1000 } = options;
    for (const [option, value] of Object.entries({ maxPending, maxOldestPendingMs, timeoutMs })) {
      if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
        throw new ConfigError(`invalid health option "${option}" = ${String(value)}: expected an integer >= 0`);
      }
    }
    const coalescer = this.moduleRef.get<Coalescer>(getCoalescerToken(name), { strict: false });
    const namespace = coalescer.namespace;
    let stats: CoalescerStats;
    try {
      stats = await within(
        coalescer.ping().then(() => coalescer.stats()),
        timeoutMs,
        () => `Redis or the database did not answer within ${timeoutMs} ms (timeoutMs)`,
      );
    } catch (error) {
      return down(key, { status: 'down', namespace, message: error instanceof Error ? error.message : String(error) });
    }
    const { pending, inflight, delayed, dead, oldestPendingMs } = stats;
    const details: CoalesceHealthDetails = { status: 'up', namespace, pending, inflight, delayed, dead, oldestPendingMs };
    if (maxPending !== undefined && pending > maxPending) {
      return down(key, { ...details, status: 'down', message: `${pending} parents pending, more than maxPending ${maxPending}` });
    }
    if (maxOldestPendingMs !== undefined && oldestPendingMs !== null && oldestPendingMs > maxOldestPendingMs) {
      return down(key, {
        ...details,
        status: 'down',
        message: `the oldest pending parent waits for ${oldestPendingMs} ms, longer than maxOldestPendingMs ${maxOldestPendingMs}`,
      });
    }
    return { [key]: details } as CoalesceHealthResult<Key>;
  }
}

/** A down result as the installed terminus expects it: returned (11+), or thrown in a HealthCheckError (10). */
function down<Key extends string>(key: Key, details: CoalesceHealthDetails): CoalesceHealthResult<Key> {
  const result = { [key]: details } as CoalesceHealthResult<Key>;
  const terminus = loadTerminus();
  if (terminus && terminus.HealthIndicatorService === undefined && terminus.HealthCheckError) {
    throw new terminus.HealthCheckError(`${key}: ${details.message ?? 'down'}`, result);
  }
  return result;
}

/** `@nestjs/terminus` if the application has it; loaded on the first failed check only. */
function loadTerminus(): Terminus | undefined {
  try {
    // Optional peer: the NestJS entry point must load without it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('@nestjs/terminus') as Terminus;
  } catch {
    return undefined;
  }
}
