import type { DeadEntry } from '../redis/records';
import type { DeadSet } from '../redis/dead';
import type { ServerClock } from '../redis/clock';
import { onRedis, type RedisSite } from '../errors';

/** Dead-letter operations. */
export interface DeadLetters {
  /** Dead parents, oldest first. */
  list(options?: { offset?: number; limit?: number }): Promise<DeadEntry[]>;
  /** Gives dead parents a fresh start (back to pending with their heat): any number of members, or 'all'. */
  retry(members: string | readonly string[] | 'all'): Promise<number>;
  /** Removes dead parents for good: any number of members, or 'all'. */
  purge(members: string | readonly string[] | 'all'): Promise<number>;
}

/** Dead parents handled per script call by `retry('all')` / `purge('all')`. */
const DEAD_BATCH = 500;

/** The dead letters as the facade offers them: any number of members, or all; Redis errors named. */
export function deadLetters(dead: DeadSet, clock: Pick<ServerClock, 'now'>, redis: RedisSite): DeadLetters {
  return {
    list: ({ offset = 0, limit = 100 } = {}) => onRedis('dead.list()', redis, dead.list(offset, limit)),
    retry: (members) =>
      onRedis(
        'dead.retry()',
        redis,
        eachBatch(members, (batch) => dead.revive(batch, clock.now(), DEAD_BATCH)),
      ),
    purge: (members) =>
      onRedis(
        'dead.purge()',
        redis,
        eachBatch(members, (batch) => dead.purge(batch, DEAD_BATCH)),
      ),
  };
}

/** Runs `run` on the named members, or on batches of the oldest until none are left. */
async function eachBatch(
  members: string | readonly string[] | 'all',
  run: (batch: readonly string[] | 'all') => Promise<number>,
): Promise<number> {
  if (members !== 'all') return run(typeof members === 'string' ? [members] : members);
  let total = 0;
  for (let n = DEAD_BATCH; n === DEAD_BATCH; total += n) n = await run('all');
  return total;
}
