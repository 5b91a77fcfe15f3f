import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { RedisClient } from '../redis/scripts';
import type { Epochs } from '../redis/epochs';
import type { Outbox } from '../delivery/outbox';
import { ConnectionError, redisUnreachable, type RedisSite } from '../errors';
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
  /** Where Redis is, and why it last could not be reached, for messages. */
  readonly redis: RedisSite;
  /** The key that remembers, for a day, that a process of the namespace said Redis' settings may lose marks. */
  readonly settingsWarned: string;
}

/**
 * Who says that Redis' settings may lose marks: `namespace`, the first process of the namespace
 * in a day (`attach()`: every CLI command attaches, and says nothing new each time);
 * `process`, once in this process whatever others said (a runner's: the long-running one whose
 * log is read).
 */
export type SettingsScope = 'namespace' | 'process';

/** A warning about Redis' settings, as it is logged. */
interface Finding {
  readonly fields: object;
  readonly message: string;
}

/** How long the namespace remembers the warning was said: a day, in seconds. */
const SAID_FOR_S = 86_400;

/** Checks and resets of a namespace as a whole: whether the services answer, Redis' settings, a deliberate reset. */
export class NamespaceAdmin {
  /** What Redis' settings call for, read once (a failed read is tried again next time). */
  private findings: Promise<Finding[] | undefined> | undefined;
  private said = false;

  constructor(private readonly options: NamespaceAdminOptions) {}

  /** Redis and the database answer; throws a ConnectionError naming the one that does not, and where it is. */
  async ping(): Promise<void> {
    const { client, dataSource, redis } = this.options;
    await client.ping().catch((error: unknown) => {
      throw redisUnreachable('ping()', redis, error);
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
   * Warns when Redis may lose marks: an eviction policy other than noeviction drops pending
   * parents under memory pressure, and without persistence a restart loses them (the epoch
   * check then finds the loss and heals it: see `onRedisLoss`). Said at most once per process,
   * and for `scope` 'namespace' only by the first process in a day (see {@link SettingsScope}).
   * CONFIG may be disabled: then nothing is said. Never throws.
   */
  async checkRedisSettings(scope: SettingsScope): Promise<void> {
    const findings = await (this.findings ??= this.readSettings());
    if (!findings) this.findings = undefined;
    if (!findings || findings.length === 0 || this.said) return;
    if (scope === 'namespace' && !(await this.firstToday())) return;
    // Another call of this process may have said it meanwhile.
    if (this.said) return;
    this.said = true;
    for (const f of findings) this.options.logger.warn(f.fields, f.message);
  }

  /** The warnings Redis' settings call for; undefined when they cannot be read. */
  private async readSettings(): Promise<Finding[] | undefined> {
    const { client, onRedisLoss } = this.options;
    let policy: string | undefined;
    let aof: string | undefined;
    let save: string | undefined;
    try {
      [policy, aof, save] = await Promise.all(
        ['maxmemory-policy', 'appendonly', 'save'].map(
          async (name) => ((await client.config('GET', name)) as unknown as string[])[1],
        ),
      );
    } catch {
      // CONFIG is often disabled on managed Redis (or Redis is away): nothing to say now.
      return undefined;
    }
    const findings: Finding[] = [];
    if (policy !== undefined && policy !== 'noeviction') {
      findings.push({
        fields: { maxmemoryPolicy: policy },
        message:
          'Redis maxmemory-policy is not noeviction: under memory pressure Redis may evict pending parents, which then stay stale',
      });
    }
    if (aof === 'no' && (save === '' || save === undefined)) {
      findings.push({
        fields: { onRedisLoss },
        message:
          onRedisLoss === 'rebuild'
            ? 'Redis has no persistence (appendonly no, no save points): after a Redis restart every registered parent is marked again (onRedisLoss: rebuild)'
            : 'Redis has no persistence (appendonly no, no save points): after a Redis restart the outbox is sent again; marks not in it are lost',
      });
    }
    return findings;
  }

  /** Whether no process of the namespace said the warnings in the last day; remembers that this one does. */
  private async firstToday(): Promise<boolean> {
    const { client, settingsWarned } = this.options;
    try {
      return (await client.set(settingsWarned, String(Date.now()), 'EX', SAID_FOR_S, 'NX')) === 'OK';
    } catch {
      // Cannot tell: saying it again is better than never.
      return true;
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
