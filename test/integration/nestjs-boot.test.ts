import 'reflect-metadata';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Module, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coalescer } from '../../src';
import { CoalesceHealthIndicator, CoalesceModule, runWorker, type CoalesceModuleOptions } from '../../src/nestjs';
import { Order, OrderLine } from '../../examples/shop/entities';
import { databaseUrl, redisUrl, suffix, waitFor } from '../support';
import { Logs, clearNamespace, createSchema, dropSchema, registerShop, sockets, typeOrm } from '../support/nest-helpers';

// CoalesceModule on a named DataSource with Redis down, in the wrong import order, with bad
// options; runWorker; which packages each entry point loads; the NestJS example as two processes.

const root = join(__dirname, '..', '..');

describe('NestJS: a named DataSource, a Redis that is down, and bad options', () => {
  const schema = `t_nestjs_offline_${suffix()}`;
  const namespace = `nest-offline-${suffix()}`;

  beforeAll(() => createSchema(schema));
  afterAll(async () => {
    await clearNamespace(namespace);
    await dropSchema(schema);
  });

  /** A port nothing listens on. */
  async function closedPort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  it('the health indicator is down, naming Redis, when Redis does not answer; the app still starts and closes', async () => {
    const port = await closedPort();
    const logs = new Logs();
    const app = await Test.createTestingModule({
      imports: [
        typeOrm(schema, 'offline'),
        CoalesceModule.forRootAsync({
          dataSource: 'offline',
          useFactory: () => ({
            redis: `redis://127.0.0.1:${port}`,
            namespace,
            logger: logs.coalesce,
            markTimeoutMs: 200,
            configure: registerShop,
          }),
        }),
        TerminusModule,
      ],
    })
      .setLogger(logs.nest)
      .compile();
    try {
      await app.init();
      const coalescer = app.get(Coalescer);
      expect(coalescer.options.dataSource).toBe(app.get(getDataSourceToken('offline')));
      const result = await app
        .get(HealthCheckService)
        .check([() => app.get(CoalesceHealthIndicator).isHealthy('coalesce', { timeoutMs: 5_000 })])
        .then(
          () => undefined,
          (error: unknown) => error,
        );
      expect(result).toBeInstanceOf(ServiceUnavailableException);
      expect((result as ServiceUnavailableException).getResponse()).toMatchObject({
        status: 'error',
        error: { coalesce: { status: 'down', namespace, message: expect.stringContaining(`127.0.0.1:${port}`) } },
      });
    } finally {
      await app.close();
    }
  });

  it('imported before TypeOrmModule, the Coalescer would close after the DataSource is destroyed: a warning says so', async () => {
    const logs = new Logs();
    const app = await Test.createTestingModule({
      imports: [
        CoalesceModule.forRootAsync({
          dataSource: 'early',
          useFactory: () => ({ redis: redisUrl(), namespace, logger: logs.coalesce, configure: registerShop }),
        }),
        typeOrm(schema, 'early'),
      ],
    })
      .setLogger(logs.nest)
      .compile();
    await app.init();
    await app.close();
    expect(logs.lines.filter((l) => !l.includes('Redis has no persistence'))).toEqual([
      expect.stringContaining(
        'the DataSource was destroyed before the Coalescer closed: marks Redis does not take now cannot be kept in the outbox; import CoalesceModule after TypeOrmModule',
      ),
    ]);
  });

  it('runWorker boots a module, drains with its runner, and close() stops the runner before the application', async () => {
    const logs = new Logs();
    @Module({
      imports: [
        typeOrm(schema, 'worker'),
        CoalesceModule.forRootAsync({
          dataSource: 'worker',
          useFactory: () => ({ redis: redisUrl(), namespace, logger: logs.coalesce, configure: registerShop }),
        }),
      ],
    })
    class WorkerModule {}
    const worker = await runWorker(WorkerModule, { runner: { schedule: '* * * * * *' }, logger: false, handleSignals: false });
    const ds = worker.app.get<DataSource>(getDataSourceToken('worker'));
    try {
      expect(worker.runner.status).toBe('running');
      const [order] = await ds.getRepository(Order).save([{ customer: 'w' }]);
      await ds.getRepository(OrderLine).save({ orderId: (order as Order).id, sku: 'x', qty: 4, unitPrice: '2.00' });
      await waitFor(
        async () => (await ds.getRepository(Order).findOneByOrFail({ id: (order as Order).id })).total === '8.00',
        "the worker's runner to recompute the order",
      );
    } finally {
      await worker.close();
    }
    await worker.closed;
    expect(worker.runner.status).toBe('stopped');
    expect(ds.isInitialized).toBe(false);
    expect(logs.lines.filter((l) => !l.includes('Redis has no persistence'))).toEqual([]);
  });

  it('runWorker refuses runner options for a module that runs its own runner, and closes what it opened', async () => {
    @Module({
      imports: [
        typeOrm(schema, 'twice'),
        CoalesceModule.forRootAsync({
          dataSource: 'twice',
          useFactory: () => ({
            redis: redisUrl(),
            namespace,
            logger: new Logs().coalesce,
            configure: registerShop,
            runner: true,
          }),
        }),
      ],
    })
    class TwiceModule {}
    const before = sockets();
    await expect(runWorker(TwiceModule, { runner: { concurrency: 2 }, logger: false, handleSignals: false })).rejects.toThrow(
      'CoalesceModule "default" already runs its own runner (its "runner" option): give the runner options in one place only',
    );
    await waitFor(() => sockets() <= before, 'the sockets of the refused worker to close', 5_000);
  });

  it.each([
    [
      'dataSource from the factory',
      { dataSource: 'x' },
      'CoalesceModule "default": option "dataSource" cannot come from useFactory; pass it to forRootAsync({ dataSource }) beside useFactory',
    ],
    [
      'no configure, and no entity declaring aggregates',
      { configure: undefined },
      'entities(): no entity of the DataSource declares an @Aggregate property',
    ],
    [
      'a bad runner schedule',
      { runner: { schedule: 'often' } },
      'invalid runner option "schedule" = "often": not a cron expression',
    ],
    ['a typo in a Coalescer option', { leaseMS: 1000 }, 'unknown option "leaseMS": did you mean "leaseMs"?'],
  ])(
    'a module with %s fails to compile, naming the option, and leaves no Redis client open',
    async (_what, override, message) => {
      const made: DataSource[] = [];
      const before = sockets();
      const build = Test.createTestingModule({
        imports: [
          typeOrm(schema, 'bad', made),
          CoalesceModule.forRootAsync({
            dataSource: 'bad',
            useFactory: () =>
              ({
                redis: redisUrl(),
                namespace,
                logger: new Logs().coalesce,
                configure: registerShop,
                ...override,
              }) as CoalesceModuleOptions,
          }),
        ],
      })
        .setLogger(new Logs().nest)
        .compile();
      await expect(build).rejects.toThrow(message);
      // Nest leaves the DataSource made before the module failed open; the Coalescer closed its clients.
      for (const ds of made) await ds.destroy();
      await waitFor(() => sockets() <= before, 'the sockets of the failed module to close', 5_000);
    },
  );
});

describe('NestJS: entry points and the example', () => {
  const built = (file: string): string => {
    const path = join(root, file);
    if (!existsSync(path)) throw new Error(`${file} is missing: run \`npm run build\` before this test`);
    return path;
  };

  const node = (code: string) =>
    new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', code], { cwd: root, timeout: 30_000 }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout.trim()),
      ),
    );

  it("loading 'typeorm-coalesce' or '/testing' loads no @nestjs package nor rxjs; '/nestjs' loads no terminus", async () => {
    built('dist/src/nestjs/index.js');
    const loaded = (entries: string[]) =>
      `${entries.map((e) => `require('./dist/src/${e}');`).join('')}` +
      `console.log(JSON.stringify(Object.keys(require.cache).map((p) => (p.match(/node_modules[\\\\/]((?:@nestjs[\\\\/])?[^\\\\/]+)/) || [])[1]).filter((m) => m && /^(@nestjs|rxjs)/.test(m)).filter((m, i, a) => a.indexOf(m) === i).sort()))`;
    expect(JSON.parse(await node(loaded(['index.js', 'testing/index.js', '../migrations/index.js'])))).toEqual([]);
    const nest = JSON.parse(await node(loaded(['nestjs/index.js']))) as string[];
    expect(nest).toEqual(expect.arrayContaining(['@nestjs/common', '@nestjs/core', '@nestjs/typeorm']));
    expect(nest.join(' ')).not.toMatch(/terminus/);
  });

  it('the example: the worker recomputes what the application writes; SIGTERM stops the worker cleanly', async () => {
    const schema = `t_nestjs_example_${suffix()}`;
    const namespace = `nest-example-${suffix()}`;
    await createSchema(schema);
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl(),
      REDIS_URL: redisUrl(),
      BLOG_SCHEMA: schema,
      BLOG_NAMESPACE: namespace,
    };
    const worker = spawn(process.execPath, [built('dist/examples/nestjs/worker.js')], { cwd: root, env });
    let out = '';
    let err = '';
    worker.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    worker.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    try {
      await waitFor(() => out.includes('worker: draining'), `the worker to start (stderr: ${err})`, 30_000);
      const main = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(
          process.execPath,
          [built('dist/examples/nestjs/main.js')],
          { cwd: root, env, timeout: 60_000 },
          (e, stdout, stderr) => resolve({ code: typeof e?.code === 'number' ? e.code : e ? 1 : 0, stdout, stderr }),
        ),
      );
      expect(main.code, main.stderr).toBe(0);
      expect(JSON.parse(main.stdout.trim().split('\n').pop() ?? '')).toEqual({ post: { id: 1, commentCount: 3 }, health: 'ok' });
      worker.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(err.split('\n').filter((l) => l && !l.includes('Redis has no persistence'))).toEqual([]);
    } finally {
      worker.kill('SIGKILL');
      await clearNamespace(namespace);
      await dropSchema(schema);
    }
  });
});
