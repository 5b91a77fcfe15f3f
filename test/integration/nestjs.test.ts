import 'reflect-metadata';
import { Inject, Injectable, ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test, type TestingModule } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken, getRepositoryToken } from '@nestjs/typeorm';
import { DataSource, type Repository } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Coalescer } from '../../src';
import {
  CoalesceHealthIndicator,
  CoalesceModule,
  InjectCoalescer,
  getCoalescerToken,
  type CoalesceModuleOptions,
} from '../../src/nestjs';
import type { CoalesceLifecycle } from '../../src/nestjs/lifecycle';
import { lifecycleToken } from '../../src/nestjs/tokens';
import { drainUntilIdle } from '../../src/testing';
import { Customer, Order, OrderLine } from '../../examples/shop/entities';
import { redisUrl, suffix, waitFor } from '../support';
import { Logs, clearNamespace, createSchema, dropSchema, registerShop, sockets, typeOrm } from '../support/nest-helpers';

// A NestJS application built with @nestjs/testing on the installed NestJS (11): TypeOrmModule on a
// throwaway schema, CoalesceModule.forRootAsync with its runner, a named second module, the
// terminus health indicator, and app.close(). Vitest emits no decorator metadata: every
// injection below names its token, as the module's own code does. NestJS 10: nestjs-10.test.ts.

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
