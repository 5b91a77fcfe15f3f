import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EntitySchema } from 'typeorm';
import { Coalescer, RegistrationError, count, sum, type DrainResult } from '../../src';
import { shopCoalescer } from '../../examples/shop/app';
import { Customer, Order, OrderLine } from '../../examples/shop/entities';
import { createTestDb, crashedClaims, DIALECTS, redisUrl, suffix, testLogger, type TestDb } from '../support';

const LEASE_MS = 150;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** One step of a random history over lines, orders moving between customers, drains and crashes. */
type Step =
  | { kind: 'line'; order: number; qty: number }
  | { kind: 'qty'; line: number; qty: number }
  | { kind: 'moveLine'; line: number; order: number }
  | { kind: 'deleteLine'; line: number }
  | { kind: 'moveOrder'; order: number; customer: number }
  | { kind: 'newOrder'; customer: number; lines: number }
  | { kind: 'drain'; concurrency: number }
  | { kind: 'crash'; claims: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('line' as const), order: fc.nat(), qty: fc.integer({ min: 1, max: 9 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('qty' as const), line: fc.nat(), qty: fc.integer({ min: 1, max: 9 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('moveLine' as const), line: fc.nat(), order: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteLine' as const), line: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('moveOrder' as const), order: fc.nat(), customer: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('newOrder' as const), customer: fc.nat(), lines: fc.integer({ min: 1, max: 4 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('drain' as const), concurrency: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), claims: fc.integer({ min: 1, max: 3 }) }) },
);

describe.each(DIALECTS)('parent chains: lines -> orders -> customers (%s)', (dialect) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(`chains_${dialect}`, {
      dialect,
      entities: [Customer, Order, OrderLine],
      // PostgreSQL: the shop's own migrations; MariaDB: synchronized from the entities.
      synchronize: dialect === 'mariadb',
    });
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('any history of line changes, orders moving between customers, drains and crashes converges: verify finds no drift', async () => {
    const ds = db.dataSource;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 20 }), async (steps) => {
        const coalescer = shopCoalescer(ds, { namespace: `chain-${suffix()}`, logger: testLogger(), leaseMs: 120_000 });
        await coalescer.attach();
        const drains: Promise<DrainResult>[] = [];
        try {
          const customers = (await ds.getRepository(Customer).save([{ name: 'a' }, { name: 'b' }, { name: 'c' }])).map(
            (c) => c.id,
          );
          const orders = (await ds.getRepository(Order).save(customers.map((customerId) => ({ customer: 'x', customerId })))).map(
            (o) => o.id,
          );
          const lines: number[] = [];
          const pick = <T>(list: readonly T[], i: number): T | undefined =>
            list.length === 0 ? undefined : list[i % list.length];
          const lineRepo = ds.getRepository(OrderLine);
          for (const s of steps) {
            switch (s.kind) {
              case 'line':
                lines.push(
                  (await lineRepo.save({ orderId: pick(orders, s.order) as number, sku: 'p', qty: s.qty, unitPrice: '2.50' })).id,
                );
                break;
              case 'qty': {
                const id = pick(lines, s.line);
                if (id !== undefined) await lineRepo.save({ id, qty: s.qty });
                break;
              }
              case 'moveLine': {
                const id = pick(lines, s.line);
                if (id !== undefined) await lineRepo.save({ id, orderId: pick(orders, s.order) as number });
                break;
              }
              case 'deleteLine': {
                const id = pick(lines, s.line);
                const row = id === undefined ? null : await lineRepo.findOneBy({ id });
                if (row) {
                  await lineRepo.remove(row);
                  lines.splice(lines.indexOf(id as number), 1);
                }
                break;
              }
              case 'moveOrder':
                await ds
                  .getRepository(Order)
                  .save({ id: pick(orders, s.order) as number, customerId: pick(customers, s.customer) as number });
                break;
              case 'newOrder':
                await ds.transaction(async (m) => {
                  const order = await m.save(
                    m.create(Order, { customer: 'n', customerId: pick(customers, s.customer) as number }),
                  );
                  orders.push(order.id);
                  for (let i = 0; i < s.lines; i += 1) {
                    lines.push(
                      (await m.save(m.create(OrderLine, { orderId: order.id, sku: 'n', qty: 1 + i, unitPrice: '1.00' }))).id,
                    );
                  }
                });
                break;
              case 'drain':
                drains.push(coalescer.drain({ concurrency: s.concurrency }));
                break;
              case 'crash':
                await coalescer.flushed();
                await crashedClaims(coalescer, s.claims, LEASE_MS);
                break;
            }
          }
          await Promise.all(drains);
          await coalescer.flushed();
          for (let round = 0; round < 20; round += 1) {
            await sleep(LEASE_MS);
            await coalescer.drain({ concurrency: 2 });
            const st = await coalescer.stats();
            if (st.pending + st.inflight + st.delayed + st.settling === 0) break;
          }
          const [o, c] = [await coalescer.verify(Order, { ids: orders }), await coalescer.verify(Customer, { ids: customers })];
          expect(o.drifted, JSON.stringify(o.examples)).toBe(0);
          expect(c.drifted, JSON.stringify(c.examples)).toBe(0);
          expect(o.skipped + c.skipped).toBe(0);
          expect(await coalescer.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0, settling: 0 });
        } finally {
          await Promise.allSettled(drains);
          coalescer.detach();
          await coalescer.reset();
          await coalescer.close();
        }
      }),
      { numRuns: dialect === 'postgres' ? 12 : 8 },
    );
  });

  it('a recomputed order marks its customer before its own ack: one drain leaves every customer fresh', async () => {
    const ds = db.dataSource;
    const coalescer = shopCoalescer(ds, { namespace: `chain-${suffix()}`, logger: testLogger() });
    await coalescer.attach();
    try {
      const [customer] = await ds.getRepository(Customer).save([{ name: 'solo' }]);
      const order = await ds.getRepository(Order).save({ customer: 's', customerId: customer!.id });
      await ds.getRepository(OrderLine).save({ orderId: order.id, sku: 'a', qty: 4, unitPrice: '2.50' });
      await coalescer.flushed();
      await coalescer.drain();
      const fresh = await ds.getRepository(Customer).findOneByOrFail({ id: customer!.id });
      expect(Number(fresh.lifetimeValue)).toBe(10);
      expect(fresh.orderCount).toBe(1);
    } finally {
      coalescer.detach();
      await coalescer.reset();
      await coalescer.close();
    }
  });

  it.each([1, 2, 4])(
    'a drain at concurrency %i ends only once the customers its recomputed orders marked are recomputed too',
    async (concurrency) => {
      const ds = db.dataSource;
      const customers = await ds.getRepository(Customer).save([{ name: 'p' }, { name: 'q' }]);
      const orders = await ds
        .getRepository(Order)
        .save(customers.flatMap((c) => [0, 1, 2].map(() => ({ customer: 'x', customerId: c.id }))));
      // Lines written before the coalescer exists: nothing is marked but what the test marks.
      await ds.getRepository(OrderLine).save(orders.map((o, i) => ({ orderId: o.id, sku: 'z', qty: i + 1, unitPrice: '1.50' })));
      const coalescer = shopCoalescer(ds, { namespace: `chain-${suffix()}`, logger: testLogger() });
      await coalescer.attach();
      try {
        // Only the orders are marked: their customers are marked by the orders' recomputes.
        await coalescer.mark(
          Order,
          orders.map((o) => o.id),
        );
        const result = await coalescer.drain({ concurrency });
        // Every order, and every customer at least once (a customer claimed while one of its
        // orders still ran is recomputed once more).
        expect(result.recomputed).toBeGreaterThanOrEqual(orders.length + customers.length);
        expect(await coalescer.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, settling: 0, dead: 0 });
        const c = await coalescer.verify(Customer, { ids: customers.map((x) => x.id) });
        expect(c.drifted, JSON.stringify(c.examples)).toBe(0);
        expect(c.skipped).toBe(0);
      } finally {
        coalescer.detach();
        await coalescer.reset();
        await coalescer.close();
      }
    },
  );

  it.each([
    ['a runner draining every second', false],
    ['{ now: true }', true],
  ])('fresh() of a customer after a line of its order is saved covers that save (%s)', async (_how, now) => {
    const ds = db.dataSource;
    const [customer] = await ds.getRepository(Customer).save([{ name: 'reader' }]);
    const orders = await ds.getRepository(Order).save([0, 1].map(() => ({ customer: 'r', customerId: customer!.id })));
    const coalescer = shopCoalescer(ds, { namespace: `chain-${suffix()}`, logger: testLogger() });
    await coalescer.attach();
    await coalescer.drain();
    const runner = now ? undefined : coalescer.runner({ schedule: '* * * * * *', concurrency: 2 });
    runner?.start();
    try {
      let expected = 0;
      for (let i = 1; i <= 4; i += 1) {
        const order = orders[i % 2]!;
        await ds.getRepository(OrderLine).save({ orderId: order.id, sku: `r${i}`, qty: i, unitPrice: '2.00' });
        expected += 2 * i;
        await coalescer.fresh(Customer, customer!.id, { timeoutMs: 20_000, now });
        // Read right after fresh(): the customer's value includes the line just saved.
        const fresh = await ds.getRepository(Customer).findOneByOrFail({ id: customer!.id });
        expect(Number(fresh.lifetimeValue)).toBe(expected);
      }
      // Without the chain, only the customer's own marks are waited for.
      await ds.getRepository(OrderLine).save({ orderId: orders[0]!.id, sku: 'own', qty: 1, unitPrice: '1.00' });
      await coalescer.fresh(Customer, customer!.id, { timeoutMs: 0, chain: false });
    } finally {
      await runner?.stop();
      coalescer.detach();
      await coalescer.reset();
      await coalescer.close();
    }
  });

  it('a customer with a quiet period is still recomputed by the drain whose orders marked it', async () => {
    const ds = db.dataSource;
    const [customer] = await ds.getRepository(Customer).save([{ name: 'quiet' }]);
    const order = await ds.getRepository(Order).save({ customer: 'x', customerId: customer!.id });
    await ds.getRepository(OrderLine).save({ orderId: order.id, sku: 'z', qty: 3, unitPrice: '2.00' });
    const coalescer = new Coalescer({ dataSource: ds, redis: redisUrl(), namespace: `chain-${suffix()}`, logger: testLogger() });
    coalescer.parent<number>(Order, { aggregates: { total: sum(OrderLine, 'qty * unitPrice'), lineCount: count(OrderLine) } });
    // A quiet period far longer than the test: the chain's mark must not wait for it.
    coalescer.parent<number>(Customer, {
      settleMs: 600_000,
      aggregates: {
        lifetimeValue: sum(Order, 'total', { foreignKey: 'customerId' }),
        orderCount: count(Order, { foreignKey: 'customerId' }),
      },
    });
    coalescer.child(OrderLine, { parent: Order, foreignKey: 'orderId' });
    coalescer.child(Order, { parent: Customer, foreignKey: 'customerId' });
    await coalescer.attach();
    try {
      await coalescer.mark(Order, order.id);
      const result = await coalescer.drain();
      expect(result.recomputed).toBe(2);
      expect(await coalescer.stats()).toMatchObject({ pending: 0, settling: 0, inflight: 0 });
      const fresh = await ds.getRepository(Customer).findOneByOrFail({ id: customer!.id });
      expect(Number(fresh.lifetimeValue)).toBe(6);
      // A host's own change of an order still waits for the customer's quiet period.
      await ds.getRepository(Order).save({ id: order.id, customer: 'renamed' });
      await coalescer.flushed();
      expect(await coalescer.stats()).toMatchObject({ settling: 1 });
    } finally {
      coalescer.detach();
      await coalescer.reset();
      await coalescer.close();
    }
  });
});

describe('parent chains: registration', () => {
  const A = new EntitySchema<{ id: number; bId: number | null }>({
    name: 'ChainA',
    columns: { id: { type: 'int', primary: true }, bId: { type: 'int', nullable: true } },
  });
  const B = new EntitySchema<{ id: number; aId: number | null }>({
    name: 'ChainB',
    columns: { id: { type: 'int', primary: true }, aId: { type: 'int', nullable: true } },
  });
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('chain_reg', { entities: [A, B] });
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('a cycle of parent chains is rejected naming it, and leaves the registration as it was', async () => {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redisUrl(),
      namespace: `chain-${suffix()}`,
      logger: testLogger(),
    });
    try {
      c.parent(A, { recompute: async () => undefined });
      c.parent(B, { recompute: async () => undefined });
      c.child(A, { parent: B, foreignKey: 'bId' });
      expect(() => c.child(B, { parent: A, foreignKey: 'aId' })).toThrow(RegistrationError);
      expect(() => c.child(B, { parent: A, foreignKey: 'aId' })).toThrow(
        /parent chain cycle: ChainA -> ChainB -> ChainA|ChainB -> ChainA -> ChainB/,
      );
      expect(() => c.child(A, { parent: A, foreignKey: 'bId' })).toThrow(/parent chain cycle: ChainA -> ChainA/);
      expect(c.registry.chainLinksOf(c.registry.parentOf('ChainB'))).toHaveLength(0);
    } finally {
      await c.close();
    }
  });
});
