import 'reflect-metadata';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Inject, Injectable, Module, ServiceUnavailableException, type LoggerService } from '@nestjs/common';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test, type TestingModule } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken, getRepositoryToken } from '@nestjs/typeorm';
import pino from 'pino';
import { DataSource, type DataSourceOptions, type Repository } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Coalescer, count, sum, type CoalesceLogger } from '../../src';
import {
  CoalesceHealthIndicator,
  CoalesceModule,
  InjectCoalescer,
  getCoalescerToken,
  runWorker,
  type CoalesceModuleOptions,
} from '../../src/nestjs';
import type { CoalesceLifecycle } from '../../src/nestjs/lifecycle';
import { lifecycleToken } from '../../src/nestjs/tokens';
import { drainUntilIdle } from '../../src/testing';
import { Customer, Order, OrderLine } from '../../examples/shop/entities';
import { migrations } from '../../examples/shop/migrations';
import { databaseUrl, redisClient, redisUrl, suffix, waitFor } from '../helpers';

// NestJS applications built with @nestjs/testing on the installed NestJS (11): TypeOrmModule on a
// throwaway schema, CoalesceModule.forRootAsync, the module's runner, a named second module,
// the terminus health indicator, and app.close(). Vitest emits no decorator metadata: every
// injection below names its token, as the module's own code does.

const root = join(__dirname, '..', '..');

/** The shop's registration: orders from their lines, customers from their orders (a chain). */
function registerShop(coalescer: Coalescer): void {
  coalescer.parent<number>(Order, { aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) } });
  coalescer.parent<number>(Customer, {
    priority: 'low',
    aggregates: {
      lifetimeValue: sum(Order, 'total', { foreignKey: 'customerId' }),
      orderCount: count(Order, { foreignKey: 'customerId' }),
    },
  });
  coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
  coalescer.child(Order, { parent: Customer, foreignKey: 'customerId' });
}

/** Log lines at warn and above, from the coalescers and from Nest. */
class Logs {
  readonly lines: string[] = [];
  readonly coalesce: CoalesceLogger = pino({ level: 'warn' }, { write: (line: string) => void this.lines.push(line) });
  readonly nest: LoggerService = {
    log: () => undefined,
    error: (message: unknown) => void this.lines.push(`nest error: ${String(message)}`),
    warn: (message: unknown) => void this.lines.push(`nest warn: ${String(message)}`),
  };
}

async function withAdmin<T>(work: (ds: DataSource) => Promise<T>): Promise<T> {
  const admin = new DataSource({ type: 'postgres', url: databaseUrl() });
  await admin.initialize();
  try {
    return await work(admin);
  } finally {
    await admin.destroy();
  }
}

const createSchema = (schema: string): Promise<unknown> => withAdmin((ds) => ds.query(`CREATE SCHEMA "${schema}"`));
const dropSchema = (schema: string): Promise<unknown> => withAdmin((ds) => ds.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));

/**
 * TypeOrmModule on `schema`, with the shop's tables and the library's made by migrations. The
 * DataSources it makes are pushed to `made` (an application that fails to compile leaves its
 * DataSource open: the test closes it).
 */
function typeOrm(schema: string, name?: string, made: DataSource[] = []) {
  return TypeOrmModule.forRootAsync({
    ...(name ? { name } : {}),
    useFactory: () => ({
      // With forRootAsync, @nestjs/typeorm reads the name from the factory's options too.
      ...(name ? { name } : {}),
      type: 'postgres' as const,
      url: databaseUrl(),
      schema,
      entities: [Customer, Order, OrderLine],
      migrations,
      migrationsRun: true,
      logging: false,
      extra: { options: `-c search_path=${schema}`, max: 5 },
    }),
    dataSourceFactory: async (options) => {
      const ds = await new DataSource(options as DataSourceOptions).initialize();
      made.push(ds);
      return ds;
    },
  });
}

async function clearNamespace(namespace: string): Promise<void> {
  const redis = redisClient();
  const keys = await redis.keys(`{${namespace}}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
}

const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

/** Orders whose stored figures differ from their lines, and customers from their orders. */
async function mismatches(ds: DataSource): Promise<number> {
  const [row] = (await ds.query(`
    SELECT (SELECT count(*) FROM shop_order o WHERE o.total <> COALESCE((SELECT sum(l.qty * l.unit_price) FROM shop_order_line l
              WHERE l.order_id = o.id AND l.deleted_at IS NULL), 0)
              OR o.line_count <> (SELECT count(*) FROM shop_order_line l WHERE l.order_id = o.id AND l.deleted_at IS NULL))
         + (SELECT count(*) FROM shop_customer c WHERE c.lifetime_value <> COALESCE((SELECT sum(o.total) FROM shop_order o
              WHERE o.customer_id = c.id), 0)
              OR c.order_count <> (SELECT count(*) FROM shop_order o WHERE o.customer_id = c.id)) AS n`)) as { n: string }[];
  return Number(row?.n);
}

@Injectable()
class ShopService {
  constructor(
    @Inject(getRepositoryToken(Customer)) readonly customers: Repository<Customer>,
    @Inject(getRepositoryToken(Order)) readonly orders: Repository<Order>,
    @Inject(getRepositoryToken(OrderLine)) readonly lines: Repository<OrderLine>,
    @InjectCoalescer() readonly coalescer: Coalescer,
    @InjectCoalescer('reports') readonly reports: Coalescer,
  ) {}

  /** A customer with `n` orders of three lines each, saved as a request would. */
  async seed(name: string, n: number): Promise<{ customer: Customer; orders: Order[] }> {
    const customer = await this.customers.save({ name });
    const orders: Order[] = [];
    for (let i = 0; i < n; i += 1) {
      const order = await this.orders.save({ customer: name, customerId: customer.id });
      await this.lines.save([1, 2, 3].map((qty) => ({ orderId: order.id, sku: `s${qty}`, qty, unitPrice: '2.50' })));
      orders.push(order);
    }
    return { customer, orders };
  }
}

describe('NestJS: CoalesceModule in an application', () => {
  const schema = `t_nestjs_${suffix()}`;
  const namespace = `nest-${suffix()}`;
  const reportsNamespace = `nest-reports-${suffix()}`;
  const logs = new Logs();
  const reported: number[] = [];
  let app: TestingModule | undefined;
  let baseline = 0;

  beforeAll(async () => {
    await createSchema(schema);
    baseline = sockets();
    app = await Test.createTestingModule({
      imports: [
        typeOrm(schema),
        TypeOrmModule.forFeature([Customer, Order, OrderLine]),
        CoalesceModule.forRootAsync({
          useFactory: (): CoalesceModuleOptions => ({
            redis: redisUrl(),
            namespace,
            logger: logs.coalesce,
            configure: registerShop,
            runner: { schedule: '* * * * * *', concurrency: 2 },
          }),
        }),
        CoalesceModule.forRoot({
          name: 'reports',
          redis: redisUrl(),
          namespace: reportsNamespace,
          logger: logs.coalesce,
          configure: (coalescer) => {
            coalescer.parent<number>(Order, { recompute: async (id) => void reported.push(id) });
            coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
          },
        }),
        TerminusModule,
      ],
      providers: [ShopService],
    })
      .setLogger(logs.nest)
      .compile();
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
    await clearNamespace(namespace);
    await clearNamespace(reportsNamespace);
    await dropSchema(schema);
  });

  const get = <T>(token: Parameters<TestingModule['get']>[0]): T => (app as TestingModule).get<T>(token, { strict: false });

  it('injects the Coalescer by @InjectCoalescer(), by type, and by name', () => {
    const shop = get<ShopService>(ShopService);
    expect(shop.coalescer).toBeInstanceOf(Coalescer);
    expect(shop.coalescer).toBe(get(Coalescer));
    expect(shop.coalescer.namespace).toBe(namespace);
    expect(shop.reports).toBe(get(getCoalescerToken('reports')));
    expect(shop.reports.namespace).toBe(reportsNamespace);
    expect(shop.coalescer.options.dataSource).toBe(get(getDataSourceToken()));
  });

  it("the module's runner recomputes what a service saves through its repositories, along the chain", async () => {
    const shop = get<ShopService>(ShopService);
    expect(get<CoalesceLifecycle>(lifecycleToken('default')).runner?.status).toBe('running');
    const { customer, orders } = await shop.seed('ada', 3);
    const ds = get<DataSource>(DataSource);
    // Nothing here drains: the runner started on bootstrap does.
    await waitFor(async () => {
      const c = await shop.customers.findOneByOrFail({ id: customer.id });
      return c.orderCount === 3 && c.lifetimeValue === '45.00';
    }, 'the runner to recompute the orders, then their customer');
    for (const { id } of orders) {
      expect(await shop.orders.findOneByOrFail({ id })).toMatchObject({ total: '15.00', lineCount: 3 });
    }
    expect(await mismatches(ds)).toBe(0);
    await waitFor(async () => {
      const s = await shop.coalescer.stats();
      return s.pending + s.settling + s.inflight === 0;
    }, 'the namespace to be idle');
  });

  it('a named module keeps its own namespace, drained by drainUntilIdle', async () => {
    const shop = get<ShopService>(ShopService);
    // The lines of the test before marked their orders in this namespace too.
    await drainUntilIdle(shop.reports, { timeoutMs: 20_000 });
    reported.length = 0;
    const { orders } = await shop.seed('bob', 2);
    const totals = await drainUntilIdle(shop.reports, { timeoutMs: 20_000 });
    expect(totals.recomputed).toBe(2);
    expect(reported.sort((a, b) => a - b)).toEqual(orders.map((o) => o.id).sort((a, b) => a - b));
    expect((await shop.reports.stats()).pending).toBe(0);
  });

  it('the health indicator is up, and down past maxPending, through HealthCheckService', async () => {
    const shop = get<ShopService>(ShopService);
    const health = get<HealthCheckService>(HealthCheckService);
    const indicator = get<CoalesceHealthIndicator>(CoalesceHealthIndicator);
    const up = await health.check([
      () => indicator.isHealthy('coalesce'),
      () => indicator.isHealthy('reports', { name: 'reports' }),
    ]);
    expect(up.status).toBe('ok');
    expect(up.details).toMatchObject({
      coalesce: { status: 'up', namespace, delayed: 0, dead: 0 },
      reports: { status: 'up', namespace: reportsNamespace, pending: 0 },
    });
    const [order] = await shop.orders.find({ take: 1 });
    await shop.reports.mark(Order, (order as Order).id);
    const failed = await health.check([() => indicator.isHealthy('reports', { name: 'reports', maxPending: 0 })]).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(ServiceUnavailableException);
    expect((failed as ServiceUnavailableException).getResponse()).toMatchObject({
      status: 'error',
      error: { reports: { status: 'down', pending: 1, message: '1 parents pending, more than maxPending 0' } },
    });
    await drainUntilIdle(shop.reports, { timeoutMs: 20_000 });
  });

  it('app.close() stops the runner, then closes the Coalescers while the DataSource is open; nothing logged, no socket left', async () => {
    const testing = app as TestingModule;
    const ds = get<DataSource>(DataSource);
    const lifecycle = get<CoalesceLifecycle>(lifecycleToken('default'));
    const runner = lifecycle.runner;
    const seen: { runner: string | undefined; dataSource: boolean }[] = [];
    for (const coalescer of [get<Coalescer>(Coalescer), get<Coalescer>(getCoalescerToken('reports'))]) {
      const close = coalescer.close.bind(coalescer);
      vi.spyOn(coalescer, 'close').mockImplementation(async () => {
        seen.push({ runner: runner?.status, dataSource: ds.isInitialized });
        await close();
      });
    }
    app = undefined;
    await testing.close();
    expect(seen).toEqual([
      { runner: 'stopped', dataSource: true },
      { runner: 'stopped', dataSource: true },
    ]);
    expect(ds.isInitialized).toBe(false);
    expect(runner?.counts.failed).toBe(0);
    await waitFor(() => sockets() <= baseline, 'the Redis and PostgreSQL sockets to close', 5_000);
    // Terminus logs the failed check of the health test; nothing else may be logged.
    expect(logs.lines.filter((l) => !/Redis has no persistence|Health Check has failed/.test(l))).toEqual([]);
  });
});

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
    ['no configure', { configure: undefined }, 'CoalesceModule "default": option "configure" = undefined: expected a function'],
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
    expect(JSON.parse(await node(loaded(['index.js', 'testing/index.js', 'migrations/index.js'])))).toEqual([]);
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
