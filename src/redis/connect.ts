import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { CoalesceLogger as Logger } from '../log';
import type { RedisClient } from './scripts';

/** The connections of one coalescer. */
export interface Clients {
  /** Claims, acks, renewals, stats: waits out short outages (a few retries). */
  readonly main: RedisClient;
  /** The save path's: fails fast, so a save is never held on an unreachable Redis. */
  readonly marker: RedisClient;
  /** Whether `main` was opened here (and is closed by `close()`). */
  readonly owned: boolean;
  /** Where Redis is, for error messages: `host:port`, or the cluster's startup nodes. */
  readonly where: string;
  /** False while the marker's connection is known to be down. */
  reachable(): boolean;
  /**
   * The last error of a connection to Redis (refused, timed out, no such host), undefined once
   * connected: what a command ioredis gave up on failed of. Seen on the connections opened here
   * (a host's own client keeps its 'error' events: its marker, a duplicate, shares its address).
   */
  lastError(): Error | undefined;
}

const DOWN = new Set(['reconnecting', 'close', 'end']);

/** Opens the connections for a URL, or duplicates a host's client (standalone or Cluster) with the marker's fail-fast settings. */
export function openClients(redis: string | Redis | Cluster, markTimeoutMs: number, logger: Logger): Clients {
  const failFast: RedisOptions = { maxRetriesPerRequest: 1, commandTimeout: markTimeoutMs, connectTimeout: markTimeoutMs };
  let main: RedisClient;
  let marker: RedisClient;
  let owned = false;
  let where: string;
  if (typeof redis === 'string') {
    main = new Redis(redis, { maxRetriesPerRequest: 3 });
    marker = new Redis(redis, failFast);
    owned = true;
    const url = new URL(redis);
    where = `${url.hostname || '127.0.0.1'}:${url.port || 6379}`;
  } else if (redis instanceof Cluster || (redis as { isCluster?: boolean }).isCluster === true) {
    const cluster = redis as Cluster;
    const options: ClusterOptions = {
      redisOptions: { ...cluster.options.redisOptions, ...failFast },
      // A shard that is down or failing over is not waited for: the marks go to the outbox.
      maxRedirections: 2,
      retryDelayOnClusterDown: 50,
      retryDelayOnFailover: 50,
      retryDelayOnTryAgain: 50,
      slotsRefreshTimeout: markTimeoutMs,
    };
    main = cluster;
    marker = cluster.duplicate(undefined, options);
    where = `cluster ${describeNodes(cluster)}`;
  } else {
    main = redis;
    marker = redis.duplicate(failFast);
    where = `${redis.options.host ?? '127.0.0.1'}:${redis.options.port ?? 6379}`;
  }
  let last: Error | undefined;
  for (const client of owned ? [main, marker] : [marker]) {
    // Connection errors surface on the commands that fail (named by `last`); keep them out of
    // 'error' crashes.
    client.on('error', (err: Error) => {
      last = err;
      logger.debug({ err: err.message }, 'redis connection error');
    });
    client.on('ready', () => (last = undefined));
  }
  return { main, marker, owned, where, reachable: () => !DOWN.has(marker.status), lastError: () => last };
}

function describeNodes(cluster: Cluster): string {
  const nodes = (cluster as unknown as { startupNodes?: unknown[] }).startupNodes ?? [];
  return (
    nodes
      .map((n) =>
        typeof n === 'object' && n
          ? `${(n as { host?: string }).host ?? '127.0.0.1'}:${(n as { port?: number }).port ?? 6379}`
          : String(n),
      )
      .join(',') || 'nodes'
  );
}

/** Closes a client politely if it is connected, at once otherwise. */
export async function quit(client: RedisClient): Promise<void> {
  try {
    if (client.status === 'ready') await client.quit();
    else client.disconnect();
  } catch {
    client.disconnect();
  }
}
