import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl, redisClient, redisUrl, suffix } from '../support';

// typeorm-coalesce/nestjs on NestJS 10 (and terminus 10, whose checks only see thrown errors),
// as an adopter gets it: the packed tarball installed into a scratch app outside this
// repository, the app (test/fixtures/nestjs-10) compiled by its own tsc with decorator metadata,
// then run against the test PostgreSQL and Redis. NestJS 11 runs in nestjs.test.ts. The scratch
// app is kept between runs in the system's temporary folder, its dependencies in npm's cache.

const root = join(__dirname, '..', '..');

const locked = (name: string): string => {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  const version = lock.packages[`node_modules/${name}`]?.version;
  if (!version) throw new Error(`package-lock.json has no ${name}`);
  return version;
};

const DEPENDENCIES = {
  '@nestjs/common': '10.4.9',
  '@nestjs/core': '10.4.9',
  '@nestjs/typeorm': '10.0.2',
  '@nestjs/terminus': '10.3.0',
  // @nestjs/typeorm 10 takes TypeORM 0.3; 0.3.17 is the floor of our peer range.
  typeorm: '0.3.17',
  rxjs: locked('rxjs'),
  'reflect-metadata': locked('reflect-metadata'),
  ioredis: locked('ioredis'),
  pg: locked('pg'),
  '@types/node': locked('@types/node'),
  typescript: locked('typescript'),
};

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }) {
  return new Promise<Output>((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && error.killed) return reject(new Error(`${command} ${args.join(' ')} timed out`));
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}

const describeOutput = (out: Output): string => `exit ${out.code}\n${out.stdout}\n${out.stderr}`.trim();

describe('NestJS 10: the packed package in a scratch NestJS 10 app', () => {
  const dir = join(tmpdir(), `typeorm-coalesce-nestjs10-${createHash('sha1').update(root).digest('hex').slice(0, 8)}`);
  const schema = `t_nestjs10_${suffix()}`;
  const namespace = `nest10-${suffix()}`;
  let packDir = '';
  let compiled: Output | undefined;

  beforeAll(async () => {
    if (!existsSync(join(root, 'dist/src/nestjs/index.js'))) {
      throw new Error('dist/src/nestjs/index.js is missing: run `npm run build` before this test');
    }
    packDir = mkdtempSync(join(tmpdir(), 'typeorm-coalesce-pack-'));
    const pack = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], {
      cwd: root,
      timeoutMs: 60_000,
    });
    if (pack.code !== 0) throw new Error(`npm pack failed: ${describeOutput(pack)}`);
    const [{ filename }] = JSON.parse(pack.stdout) as [{ filename: string }];
    const stamp = join(dir, 'dependencies.json');
    const wanted = JSON.stringify(DEPENDENCIES);
    if (existsSync(stamp) && readFileSync(stamp, 'utf8') !== wanted) rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'nestjs10-app', version: '1.0.0', private: true, dependencies: DEPENDENCIES }, null, 2),
    );
    const install = await sh(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-progress', join(packDir, filename)],
      { cwd: dir, timeoutMs: 240_000 },
    );
    if (install.code !== 0) throw new Error(`npm install in ${dir} failed: ${describeOutput(install)}`);
    writeFileSync(stamp, wanted);
    rmSync(join(dir, 'src'), { recursive: true, force: true });
    cpSync(join(root, 'test', 'fixtures', 'nestjs-10'), join(dir, 'src'), { recursive: true });
    // NestJS's default project: CommonJS, decorators with metadata. Our declarations are checked too.
    const compilerOptions = {
      target: 'ES2021',
      module: 'commonjs',
      lib: ['ES2022'],
      types: ['node'],
      strict: true,
      skipLibCheck: false,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      outDir: 'dist',
      rootDir: 'src',
    };
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['src'] }, null, 2));
    compiled = await sh(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: dir,
      timeoutMs: 180_000,
    });
  }, 480_000);

  afterAll(async () => {
    if (packDir) rmSync(packDir, { recursive: true, force: true });
    const client = new Client({ connectionString: databaseUrl() });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
    const redis = redisClient();
    const keys = await redis.keys(`{${namespace}}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('installs NestJS 10 and terminus 10', () => {
    for (const [name, version] of Object.entries({ '@nestjs/core': '10.4.9', '@nestjs/terminus': '10.3.0' })) {
      const installed = JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
      expect(installed.version).toBe(version);
    }
  });

  it('compiles against NestJS 10 with skipLibCheck false', () => {
    expect(compiled && describeOutput(compiled)).toBe('exit 0');
  });

  it('boots, recomputes through the module runner, reports health up and down (thrown, for terminus 10), and closes in order', async () => {
    const client = new Client({ connectionString: databaseUrl() });
    await client.connect();
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.end();
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl(),
      REDIS_URL: redisUrl(),
      APP_SCHEMA: schema,
      APP_NAMESPACE: namespace,
    };
    const out = await sh(process.execPath, [join('dist', 'main.js')], { cwd: dir, env, timeoutMs: 60_000 });
    expect(out.code, describeOutput(out)).toBe(0);
    const result = JSON.parse(out.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
    const downDetails = { status: 'down', namespace, pending: 1, message: '1 parents pending, more than maxPending 0' };
    expect(result).toEqual({
      commentCount: 3,
      up: 'ok',
      down: expect.objectContaining({ status: 'error', error: { coalesce: expect.objectContaining(downDetails) } }),
      thrown: { isHealthCheckError: true, causes: { coalesce: expect.objectContaining(downDetails) } },
      drainedAfterMark: 1,
      // NestJS 10 runs the shutdown hooks deepest module first: TypeOrmCoreModule destroys the
      // DataSource before the Coalescer closes, but after the runner stopped (beforeApplicationShutdown).
      runnerAtDestroy: 'stopped',
      dataSourceOpenAtClose: false,
      dataSourceDestroyed: true,
      logged: [],
    });
  });
});
