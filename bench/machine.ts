import { cpus, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { DataSource } from 'typeorm';

/** What the figures were measured on, printed with them. */
export interface Machine {
  cores: number;
  cpuModel: string;
  /** 1-minute load average when the bench started: other work on the machine moves the figures. */
  loadAverage: number;
  node: string;
  postgres: string;
  redis: string;
  bullmq: string;
  typeorm: string;
  /** ISO time the bench started. */
  date: string;
  quick: boolean;
}

/** Version of an installed package, read from its package.json (its `exports` may hide it). */
function packageVersion(name: string): string {
  let dir = dirname(require.resolve(name));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === name) return pkg.version ?? 'unknown';
    } catch {
      // No package.json here: look further up.
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

/** The machine, the runtime and the versions of every service and peer measured. */
export async function machineInfo(databaseUrl: string, redisUrl: string, quick: boolean): Promise<Machine> {
  const redis = new Redis(redisUrl, { lazyConnect: true });
  const db = new DataSource({ type: 'postgres', url: databaseUrl });
  try {
    await Promise.all([redis.connect(), db.initialize()]);
    const info = await redis.info('server');
    const [row] = (await db.query('SHOW server_version')) as { server_version: string }[];
    const cpu = cpus();
    return {
      cores: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? 'unknown',
      loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
      node: process.version,
      postgres: row?.server_version ?? 'unknown',
      redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
      bullmq: packageVersion('bullmq'),
      typeorm: packageVersion('typeorm'),
      date: new Date().toISOString(),
      quick,
    };
  } finally {
    redis.disconnect();
    if (db.isInitialized) await db.destroy();
  }
}
