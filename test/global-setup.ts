import type { TestProject } from 'vitest/node' with { 'resolution-mode': 'import' };
import { mysqlAnswers, postgresAnswers, redisAnswers } from './support/probe';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
    mysqlUrl: string;
  }
}

const LOCAL_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379';
const LOCAL_MYSQL_URL = 'mysql://root@127.0.0.1:3306/test';

/**
 * Finds PostgreSQL, MySQL/MariaDB and Redis for the suite: DATABASE_URL / MYSQL_URL / REDIS_URL
 * when set (CI sets them),
 * else the local servers, else containers where a Docker engine answers. Without any of them
 * the suite fails loudly: an integration suite that silently skips proves nothing.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: (() => Promise<unknown>)[] = [];
  let databaseUrl = process.env.DATABASE_URL;
  let redisUrl = process.env.REDIS_URL;
  let mysqlUrl = process.env.MYSQL_URL;
  if (!databaseUrl && (await postgresAnswers(LOCAL_DATABASE_URL))) databaseUrl = LOCAL_DATABASE_URL;
  if (!redisUrl && (await redisAnswers(LOCAL_REDIS_URL))) redisUrl = LOCAL_REDIS_URL;
  if (!mysqlUrl && (await mysqlAnswers(LOCAL_MYSQL_URL))) mysqlUrl = LOCAL_MYSQL_URL;
  if (!databaseUrl || !redisUrl || !mysqlUrl) {
    try {
      if (!databaseUrl) {
        const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
        const pg = await new PostgreSqlContainer('postgres:15-alpine').start();
        stops.push(() => pg.stop());
        databaseUrl = pg.getConnectionUri();
      }
      if (!redisUrl) {
        const { RedisContainer } = await import('@testcontainers/redis');
        const redis = await new RedisContainer('redis:7-alpine').start();
        stops.push(() => redis.stop());
        redisUrl = redis.getConnectionUrl();
      }
      if (!mysqlUrl) {
        const { MariaDbContainer } = await import('@testcontainers/mariadb');
        const maria = await new MariaDbContainer('mariadb:10.11').withRootPassword('root').start();
        stops.push(() => maria.stop());
        mysqlUrl = `mysql://root:root@${maria.getHost()}:${maria.getPort()}/${maria.getDatabase()}`;
      }
    } catch (error) {
      throw new Error(
        'No PostgreSQL, MySQL/MariaDB or Redis for the integration tests: set DATABASE_URL, MYSQL_URL and REDIS_URL, start the local ' +
          'servers (see README), or run a Docker engine for testcontainers. ' +
          `(containers: ${(error as Error).message})`,
      );
    }
  }
  if (!(await postgresAnswers(databaseUrl))) throw new Error(`PostgreSQL does not answer at ${databaseUrl}`);
  if (!(await redisAnswers(redisUrl))) throw new Error(`Redis does not answer at ${redisUrl}`);
  if (!(await mysqlAnswers(mysqlUrl))) throw new Error(`MySQL/MariaDB does not answer at ${mysqlUrl}`);
  project.provide('databaseUrl', databaseUrl);
  project.provide('redisUrl', redisUrl);
  project.provide('mysqlUrl', mysqlUrl);
  return async () => {
    for (const stop of stops) await stop();
  };
}
