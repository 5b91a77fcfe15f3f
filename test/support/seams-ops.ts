import fc from 'fast-check';
import type { DeepPartial, EntityManager } from 'typeorm';
import type { Coalescer } from '../../src';
import type { Dialect } from './db';
import { SeamCustomer, SeamLine, SeamOrder, sql } from './seams-entities';

// One host write per step, over every capture path a line, an order or a customer can take.
// Picks (`line`, `order`, ...) are indexes into what exists when the step runs, so a shrunk
// history still applies.

const PRICES = ['0.01', '1.25', '2.50', '19.99', '999.95'] as const;

/** A host write outside or inside a transaction. */
export type Write =
  | { kind: 'insert'; order: number; qty: number; price: string }
  | { kind: 'qtyPartial'; line: number; qty: number }
  | { kind: 'full'; line: number; qty: number; price: string }
  | { kind: 'moveSave'; line: number; order: number; partial: boolean }
  | { kind: 'moveUpdate'; line: number; order: number }
  | { kind: 'remove'; line: number }
  | { kind: 'soft'; line: number; by: 'entity' | 'criteria' }
  | { kind: 'restore'; line: number; by: 'entity' | 'criteria' }
  | { kind: 'newOrder'; customer: number; qtys: number[] }
  | { kind: 'inline'; order: number; qtys: number[] }
  | { kind: 'adopt'; order: number; line: number }
  | { kind: 'moveOrder'; order: number; customer: number }
  | { kind: 'moveCustomer'; customer: number; region: number }
  | { kind: 'qbQty'; lines: number[]; qty: number }
  | { kind: 'qbMove'; lines: number[]; order: number }
  | { kind: 'qbDelete'; lines: number[] }
  | { kind: 'upsertMove'; line: number; order: number; qty: number }
  | { kind: 'upsertNew'; order: number; qty: number }
  | { kind: 'rawQty'; line: number; qty: number }
  | { kind: 'rawMove'; line: number; order: number }
  | { kind: 'rawMoveOrder'; order: number; customer: number };

/** A step: one write on its own, or several in one `dataSource.transaction()`. */
export type Step = Write | { kind: 'tx'; writes: Write[] };

const pick = fc.nat({ max: 99 });
const qty = fc.integer({ min: 1, max: 9 });
const price = fc.constantFrom(...PRICES);
const rec = <K extends string, T extends Record<string, unknown>>(kind: K, fields: { [F in keyof T]: fc.Arbitrary<T[F]> }) =>
  fc.record(fields).map((f) => ({ kind, ...f }));

export const write: fc.Arbitrary<Write> = fc.oneof(
  { weight: 3, arbitrary: rec('insert', { order: pick, qty, price }) },
  { weight: 2, arbitrary: rec('qtyPartial', { line: pick, qty }) },
  { weight: 2, arbitrary: rec('full', { line: pick, qty, price }) },
  { weight: 2, arbitrary: rec('moveSave', { line: pick, order: pick, partial: fc.boolean() }) },
  { weight: 2, arbitrary: rec('moveUpdate', { line: pick, order: pick }) },
  { weight: 1, arbitrary: rec('remove', { line: pick }) },
  { weight: 2, arbitrary: rec('soft', { line: pick, by: fc.constantFrom('entity' as const, 'criteria' as const) }) },
  { weight: 2, arbitrary: rec('restore', { line: pick, by: fc.constantFrom('entity' as const, 'criteria' as const) }) },
  { weight: 1, arbitrary: rec('newOrder', { customer: pick, qtys: fc.array(qty, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: rec('inline', { order: pick, qtys: fc.array(qty, { minLength: 1, maxLength: 3 }) }) },
  { weight: 1, arbitrary: rec('adopt', { order: pick, line: pick }) },
  { weight: 2, arbitrary: rec('moveOrder', { order: pick, customer: pick }) },
  { weight: 2, arbitrary: rec('moveCustomer', { customer: pick, region: pick }) },
  { weight: 1, arbitrary: rec('qbQty', { lines: fc.array(pick, { minLength: 1, maxLength: 3 }), qty }) },
  { weight: 1, arbitrary: rec('qbMove', { lines: fc.array(pick, { minLength: 1, maxLength: 3 }), order: pick }) },
  { weight: 1, arbitrary: rec('qbDelete', { lines: fc.array(pick, { minLength: 1, maxLength: 2 }) }) },
  { weight: 2, arbitrary: rec('upsertMove', { line: pick, order: pick, qty }) },
  { weight: 1, arbitrary: rec('upsertNew', { order: pick, qty }) },
  { weight: 1, arbitrary: rec('rawQty', { line: pick, qty }) },
  { weight: 1, arbitrary: rec('rawMove', { line: pick, order: pick }) },
  { weight: 1, arbitrary: rec('rawMoveOrder', { order: pick, customer: pick }) },
);

export const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: write },
  { weight: 1, arbitrary: rec('tx', { writes: fc.array(write, { minLength: 2, maxLength: 4 }) }) },
);

interface LineRow {
  id: number;
  sku: string;
  orderId: number;
}

/** What exists when a step runs, read through the step's own manager (its transaction's, if any). */
interface Snapshot {
  live: LineRow[];
  deleted: LineRow[];
  orders: number[];
  customers: number[];
  regions: number[];
}

async function snapshot(m: EntityManager, dialect: Dialect): Promise<Snapshot> {
  const lines = await sql(m, dialect, 'SELECT id, sku, order_id, deleted_at FROM seam_line ORDER BY id');
  const ids = async (table: string): Promise<number[]> =>
    (await sql(m, dialect, `SELECT id FROM ${table} ORDER BY id`)).map((r) => Number(r.id));
  const row = (r: Record<string, unknown>): LineRow => ({ id: Number(r.id), sku: String(r.sku), orderId: Number(r.order_id) });
  return {
    live: lines.filter((r) => r.deleted_at === null).map(row),
    deleted: lines.filter((r) => r.deleted_at !== null).map(row),
    orders: await ids('seam_order'),
    customers: await ids('seam_customer'),
    regions: await ids('seam_region'),
  };
}

/** What one run's writes share. */
export interface RunContext {
  readonly coalescer: Coalescer;
  readonly dialect: Dialect;
  /** Registered levels: marks for unregistered types are not a host's business. */
  readonly levels: 1 | 2 | 3;
  /** A fresh natural key. */
  sku(): string;
}

const at = <T>(list: readonly T[], i: number): T | undefined => (list.length === 0 ? undefined : list[i % list.length]);

/**
 * Applies one write through `m`. Raw SQL writes push their explicit `mark()` to `after`, to run
 * once the write has committed.
 */
export async function applyWrite(m: EntityManager, ctx: RunContext, w: Write, after: (() => Promise<unknown>)[]): Promise<void> {
  const s = await snapshot(m, ctx.dialect);
  const lines = m.getRepository(SeamLine);
  const orders = m.getRepository(SeamOrder);
  const line = 'line' in w ? at(w.kind === 'restore' ? s.deleted : s.live, w.line) : undefined;
  const order = 'order' in w ? at(s.orders, w.order) : undefined;
  const customer = 'customer' in w ? at(s.customers, w.customer) : undefined;
  const skus = 'lines' in w ? [...new Set(w.lines.map((i) => at(s.live, i)?.sku))].filter((k) => k !== undefined) : [];
  const qb = (): ReturnType<EntityManager['createQueryBuilder']> => m.createQueryBuilder();
  switch (w.kind) {
    case 'insert':
      if (order) await lines.save(lines.create({ sku: ctx.sku(), orderId: order, qty: w.qty, unitPrice: w.price }));
      return;
    case 'qtyPartial':
      if (line) await lines.save({ id: line.id, qty: w.qty });
      return;
    case 'full':
    case 'moveSave': {
      if (!line || (w.kind === 'moveSave' && !order)) return;
      if (w.kind === 'moveSave' && w.partial) {
        await lines.save({ id: line.id, orderId: order as number });
        return;
      }
      const row = await lines.findOneByOrFail({ id: line.id });
      if (w.kind === 'full') Object.assign(row, { qty: w.qty, unitPrice: w.price });
      else row.orderId = order as number;
      await lines.save(row);
      return;
    }
    case 'moveUpdate':
      if (line && order) await lines.update(line.id, { orderId: order });
      return;
    case 'remove':
      if (line) await lines.remove(await lines.findOneByOrFail({ id: line.id }));
      return;
    case 'soft':
      if (line && w.by === 'entity') await lines.softRemove(await lines.findOneByOrFail({ id: line.id }));
      else if (line) await lines.softDelete(line.id);
      return;
    case 'restore':
      if (line && w.by === 'entity')
        await lines.recover(await lines.findOneOrFail({ where: { id: line.id }, withDeleted: true }));
      else if (line) await lines.restore(line.id);
      return;
    case 'newOrder':
    case 'inline': {
      const inline = w.qtys.map((q) => lines.create({ sku: ctx.sku(), qty: q, unitPrice: '2.50' }));
      if (w.kind === 'newOrder' && customer) await orders.save(orders.create({ customerId: customer, lines: inline }));
      if (w.kind === 'inline' && order) await orders.save({ id: order, lines: inline } as DeepPartial<SeamOrder>);
      return;
    }
    case 'adopt':
      // The line joins the order through the order's one-to-many relation, not its own key.
      if (line && order) await orders.save({ id: order, lines: [{ id: line.id }] } as DeepPartial<SeamOrder>);
      return;
    case 'moveOrder':
      if (order && customer) await orders.save({ id: order, customerId: customer });
      return;
    case 'moveCustomer': {
      const [c, region] = [at(s.customers, w.customer), at(s.regions, w.region)];
      if (c && region) await m.getRepository(SeamCustomer).save({ id: c, regionId: region });
      return;
    }
    case 'qbQty':
    case 'qbMove':
      if (skus.length === 0 || (w.kind === 'qbMove' && !order)) return;
      await qb()
        .update(SeamLine)
        .set(w.kind === 'qbQty' ? { qty: w.qty } : { orderId: order as number })
        .where('sku IN (:...skus)', { skus })
        .execute();
      return;
    case 'qbDelete':
      if (skus.length > 0) await qb().delete().from(SeamLine).where('sku IN (:...skus)', { skus }).execute();
      return;
    case 'upsertMove':
      if (line && order) await lines.upsert({ sku: line.sku, orderId: order, qty: w.qty, unitPrice: '1.25' }, ['sku']);
      return;
    case 'upsertNew':
      if (order) await lines.upsert({ sku: ctx.sku(), orderId: order, qty: w.qty, unitPrice: '1.25' }, ['sku']);
      return;
    case 'rawQty':
      if (!line) return;
      await sql(m, ctx.dialect, 'UPDATE seam_line SET qty = ? WHERE id = ?', [w.qty, line.id]);
      after.push(() => ctx.coalescer.mark(SeamOrder, line.orderId));
      return;
    case 'rawMove':
      if (!line || !order) return;
      await sql(m, ctx.dialect, 'UPDATE seam_line SET order_id = ? WHERE id = ?', [order, line.id]);
      after.push(() => ctx.coalescer.mark(SeamOrder, [line.orderId, order]));
      return;
    case 'rawMoveOrder': {
      if (!order || !customer) return;
      const [was] = await sql(m, ctx.dialect, 'SELECT customer_id FROM seam_order WHERE id = ?', [order]);
      await sql(m, ctx.dialect, 'UPDATE seam_order SET customer_id = ? WHERE id = ?', [customer, order]);
      if (ctx.levels >= 2) after.push(() => ctx.coalescer.mark(SeamCustomer, [Number(was?.customer_id), customer]));
      return;
    }
  }
}

/** Applies one step: a write on the DataSource's manager, or several in one transaction; then its marks. */
export async function applyStep(ctx: RunContext, step: Step): Promise<void> {
  const ds = ctx.coalescer.options.dataSource;
  const after: (() => Promise<unknown>)[] = [];
  if (step.kind === 'tx') {
    await ds.transaction(async (m) => {
      for (const w of step.writes) await applyWrite(m, ctx, w, after);
    });
  } else {
    await applyWrite(ds.manager, ctx, step, after);
  }
  for (const mark of after) await mark();
}
