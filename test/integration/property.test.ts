import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Coalescer, DrainResult } from '../../src';
import {
  countMismatches,
  crashedClaims,
  createTestDb,
  dispose,
  OrderLine,
  seedOrders,
  shopCoalescer,
  type TestDb,
} from '../support';

const LEASE_MS = 150;

/** One step of a random history. Line and order picks are indexes into what exists then. */
type Step =
  | { kind: 'insert'; order: number; qty: number }
  | { kind: 'update'; line: number; qty: number }
  | { kind: 'move'; line: number; order: number }
  | { kind: 'delete'; line: number }
  | { kind: 'softDelete'; line: number }
  | { kind: 'formSave'; order: number; lines: number }
  | { kind: 'drain'; concurrency: number }
  | { kind: 'crash'; claims: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('insert' as const), order: fc.nat(), qty: fc.integer({ min: 1, max: 9 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('update' as const), line: fc.nat(), qty: fc.integer({ min: 1, max: 9 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('move' as const), line: fc.nat(), order: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), line: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('softDelete' as const), line: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('formSave' as const), order: fc.nat(), lines: fc.integer({ min: 1, max: 6 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('drain' as const), concurrency: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), claims: fc.integer({ min: 1, max: 3 }) }) },
);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('property: any history of child changes, drains and crashes converges', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('property');
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('every order equals its SQL aggregate and every set is empty at the end', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 25 }), async (steps) => {
        // Crashed claims use LEASE_MS; real recomputes get all the room a loaded machine may need,
        // so none times out here (late writes have their own test in core-drain).
        const coalescer: Coalescer = shopCoalescer(db.dataSource, { leaseMs: 120_000 });
        await coalescer.attach();
        const drains: Promise<DrainResult>[] = [];
        try {
          const orders = await seedOrders(db.dataSource, 4, 0);
          const lines = db.dataSource.getRepository(OrderLine);
          const live: number[] = [];
          const pick = <T>(list: readonly T[], i: number): T | undefined =>
            list.length === 0 ? undefined : list[i % list.length];
          for (const s of steps) {
            switch (s.kind) {
              case 'insert': {
                const saved = await lines.save(
                  lines.create({ orderId: pick(orders, s.order), sku: 'p', qty: s.qty, unitPrice: '1.25' }),
                );
                live.push(saved.id);
                break;
              }
              case 'update': {
                const id = pick(live, s.line);
                if (id !== undefined) await lines.save({ id, qty: s.qty });
                break;
              }
              case 'move': {
                const id = pick(live, s.line);
                const row = id === undefined ? null : await lines.findOneBy({ id });
                if (row) {
                  row.orderId = pick(orders, s.order) as number;
                  await lines.save(row);
                }
                break;
              }
              case 'delete':
              case 'softDelete': {
                const id = pick(live, s.line);
                const row = id === undefined ? null : await lines.findOneBy({ id });
                if (row && id !== undefined) {
                  // remove() clears row.id: forget the line by the id it had.
                  if (s.kind === 'delete') await lines.remove(row);
                  else await lines.softRemove(row);
                  live.splice(live.indexOf(id), 1);
                }
                break;
              }
              case 'formSave': {
                const orderId = pick(orders, s.order) as number;
                await db.dataSource.transaction(async (m) => {
                  for (let i = 0; i < s.lines; i += 1) {
                    const saved = await m.save(m.create(OrderLine, { orderId, sku: `form${i}`, qty: 1 + i, unitPrice: '2.00' }));
                    live.push(saved.id);
                  }
                });
                break;
              }
              case 'drain':
                // Not awaited: drains run while the history goes on.
                drains.push(coalescer.drain({ concurrency: s.concurrency }));
                break;
              case 'crash':
                // A worker claims and dies before its ack.
                await crashedClaims(coalescer, s.claims, LEASE_MS);
                break;
            }
          }
          await Promise.all(drains);
          await coalescer.flushed();
          // Wait out the crashed workers' leases, then drain until nothing is left anywhere.
          for (let round = 0; round < 20; round += 1) {
            await sleep(LEASE_MS);
            await coalescer.drain({ concurrency: 2 });
            const st = await coalescer.stats();
            if (st.pending + st.inflight + st.delayed + st.settling === 0) break;
          }
          const st = await coalescer.stats();
          expect({
            pending: st.pending,
            inflight: st.inflight,
            delayed: st.delayed,
            dead: st.dead,
            settling: st.settling,
            outbox: st.outbox,
          }).toEqual({
            pending: 0,
            inflight: 0,
            delayed: 0,
            dead: 0,
            settling: 0,
            outbox: 0,
          });
          // This history's own orders: a failure names the history that caused it.
          expect(await countMismatches(db.dataSource.manager, orders)).toBe(0);
        } finally {
          // A step that threw must not leave drains running into a closed coalescer.
          await Promise.allSettled(drains);
          await dispose(coalescer);
        }
      }),
      { numRuns: 15 },
    );
  });
});
