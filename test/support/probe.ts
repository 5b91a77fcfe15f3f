import { Client } from 'pg';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';

/** True when PostgreSQL at `url` answers a query. */
export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** True when Redis at `url` answers PING. */
export async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/** True when MySQL/MariaDB at `url` (mysql://user:password@host:port/database) answers a query. */
export async function mysqlAnswers(url: string): Promise<boolean> {
  try {
    const connection = await createConnection({ uri: url, connectTimeout: 2000 });
    try {
      await connection.query('SELECT 1');
      return true;
    } finally {
      await connection.end().catch(() => undefined);
    }
  } catch {
    return false;
  }
}
