import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { RedisClient } from '../redis/scripts';
import type { Epochs } from '../redis/epochs';
import type { Outbox } from '../delivery/outbox';
import { ConnectionError, redisUnreachable } from '../errors';
import type { EpochGuard } from './epoch-guard';

/** What the namespace's administration needs. */
export interface NamespaceAdminOptions {
  readonly client: RedisClient;
  readonly dataSource: DataSource;
  readonly epochs: Pick<Epochs, 'clear'>;
  readonly guard: EpochGuard;
  readonly outbox: Pick<Outbox, 'clear'>;
  readonly logger: Logger;
  readonly onRedisLoss: 'rebuild' | 'warn';
  /** Where Redis is, for messages. */
  readonly where: string;
}

/** Checks and resets of a namespace as a whole: whether the services answer, Redis' settings, a deliberate reset. */
export class NamespaceAdmin {
  private redisChecked = false;

  constructor(private readonly options: NamespaceAdminOptions) {}

  /** Redis and the database answer; throws a ConnectionError naming the one that does not, and where it is. */
  async ping(): Promise<void> {
    const { client, dataSource, where } = this.options;
    await client.ping().catch((error: unknown) => {
      throw redisUnreachable('ping()', where, error);
    });
    const what = `${String(dataSource.options.type)} database${describeDatabase(dataSource.options)}`;
    if (!dataSource.isInitialized) throw new ConnectionError(`cannot reach the ${what}: the DataSource is not initialized`);
    try {
      await dataSource.query('SELECT 1');
    } catch (error) {
      throw new ConnectionError(`cannot reach the ${what}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Deletes every key of the namespace in Redis (but its fence counter, so fencing tokens never
   * repeat), its outbox rows and its recorded epoch, and installs a new epoch marked as a
   * reset's: the namespace starts afresh, and no process takes the empty Redis for a data loss.
   */
  async reset(): Promise<void> {
    const { guard, epochs, outbox } = this.options;
    await guard.forget();
    await epochs.clear();
    await guard.installReset();
    await outbox.clear();
  }

  /**
   * Warns once when Redis may lose marks: an eviction policy other than noeviction drops
   * pending parents under memory pressure, and without persistence a restart loses them (the
   * epoch check then finds the loss and heals it: see `onRedisLoss`). CONFIG may be disabled:
   * then nothing is said.
   */
  async checkRedisSettings(): Promise<void> {
    if (this.redisChecked) return;
    this.redisChecked = true;
    const { client, logger, onRedisLoss } = this.options;
    try {
      const [policy, aof, save] = await Promise.all(
        ['maxmemory-policy', 'appendonly', 'save'].map(
          async (name) => ((await client.config('GET', name)) as unknown as string[])[1],
        ),
      );
      if (policy !== undefined && policy !== 'noeviction') {
        logger.warn(
          { maxmemoryPolicy: policy },
          'Redis maxmemory-policy is not noeviction: under memory pressure Redis may evict pending parents, which then stay stale',
        );
      }
      if (aof === 'no' && (save === '' || save === undefined)) {
        logger.warn(
          { onRedisLoss },
          onRedisLoss === 'rebuild'
            ? 'Redis has no persistence (appendonly no, no save points): after a Redis restart every registered parent is marked again (onRedisLoss: rebuild)'
            : 'Redis has no persistence (appendonly no, no save points): after a Redis restart the outbox is sent again; marks not in it are lost',
        );
      }
    } catch {
      // CONFIG is often disabled on managed Redis: nothing to say then.
    }
  }
}

/** ` at host:port/database` from DataSource options, for messages (never the password). */
function describeDatabase(options: object): string {
  const o = options as { url?: string; host?: string; port?: number; database?: string };
  if (o.url) {
    try {
      const u = new URL(o.url);
      return ` at ${u.hostname}:${u.port || '(default port)'}${u.pathname}`;
    } catch {
      return '';
    }
  }
  if (o.host) return ` at ${o.host}:${o.port ?? '(default port)'}/${o.database ?? ''}`;
  return '';
}
