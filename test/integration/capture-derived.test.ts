import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EntityManager } from 'typeorm';
import { Coalescer } from '../../src';
import { createTestDb, DIALECTS, dispose, redisUrl, suffix, type TestDb } from '../support';
import { CAPTURE_ENTITIES, CpColLine, CpOrder, CpPlainLine, CpRelLine, recordingLogger } from '../support/capture-entities';

const WARN = 40;

// Derived columns of a parent, written back by a host save() from a stale copy: a warning once
// per column, and one more recompute. A recompute writing them through manager.save() is not a
// host write. And a child change whose parent cannot be found warns once per (entity, site).
describe.each(DIALECTS)('derived columns and unresolved changes (%s)', (dialect) => {
  let db: TestDb;
  let coalescer: Coalescer;
  let log: ReturnType<typeof recordingLogger>;
  const recomputed: number[] = [];
  // How the recompute writes the order: save() of the loaded entity, or repository.update() of the columns.
  let writes: 'save' | 'update' = 'save';

  // Rebuilds an order the way many hosts do: load it, set the fields, save() it; or compute the
  // fields and update() them.
  async function recompute(id: number, manager: EntityManager): Promise<void> {
    recomputed.push(id);
    const lines = await manager.findBy(CpColLine, { orderId: id });
    const fields = { total: lines.reduce((sum, l) => sum + l.qty, 0), lineCount: lines.length };
    if (writes === 'update') {
      await manager.getRepository(CpOrder).update(id, fields);
      return;
    }
    const order = await manager.findOneBy(CpOrder, { id });
    if (!order) return;
    Object.assign(order, fields);
    await manager.save(order);
  }

  beforeAll(async () => {
    db = await createTestDb(`cap_derived_${dialect}`, { dialect, entities: CAPTURE_ENTITIES });
  });
  afterAll(async () => {
    await db.destroy();
  });
  beforeEach(async () => {
    if (coalescer) await dispose(coalescer);
    log = recordingLogger();
    recomputed.length = 0;
    writes = 'save';
    coalescer = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: `cd-${suffix()}`, logger: log.logger });
    coalescer.parent<number>(CpOrder, {
      recompute: (id, { manager }) => recompute(id, manager),
      derived: ['total', 'lineCount'],
    });
    coalescer.child(CpColLine, { parent: CpOrder, foreignKey: 'orderId' });
    coalescer.child(CpRelLine, { parent: CpOrder, foreignKey: 'order' });
    coalescer.child(CpPlainLine, { parent: CpOrder, foreignKey: 'order' });
    await coalescer.attach();
  });
  afterAll(async () => {
    await dispose(coalescer);
  });

  const orders = () => db.dataSource.getRepository(CpOrder);
  const warnings = (about: string) => log.lines.filter((l) => l.level === WARN && l.msg.includes(about));
  const pending = async () => {
    await coalescer.flushed();
    return (await coalescer.hottest(100)).map((h) => h.member);
  };

  it('derived names must be columns of the parent; the error names the property and the entity', () => {
    const c = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: 'unused', logger: log.logger });
    const noop = async () => undefined;
    expect(() => c.parent(CpOrder, { recompute: noop, derived: ['total', 'totl'] })).toThrow(
      /parent CpOrder: derived "totl" is not a column of CpOrder \(columns: customer, total, lineCount\)/,
    );
    expect(() => c.parent(CpOrder, { recompute: noop, derived: ['relLines'] })).toThrow(/derived "relLines" is not a column/);
    expect(() => c.parent(CpOrder, { recompute: noop, derived: ['id'] })).toThrow(/derived "id" is the primary key/);
    expect(() => c.parent(CpOrder, { recompute: noop, derived: 'total' as unknown as string[] })).toThrow(
      /derived must be an array/,
    );
    // Nothing was half registered: a good registration still works.
    expect(() => c.parent(CpOrder, { recompute: noop, derived: ['total'] })).not.toThrow();
    void c.close();
  });

  it('a recompute that saves the parent through the manager is not a host write', async () => {
    const o = await orders().save({ customer: 'c' });
    await db.dataSource.getRepository(CpColLine).save([
      { sku: 'a', qty: 2, orderId: o.id },
      { sku: 'b', qty: 3, orderId: o.id },
    ]);
    const r = await coalescer.drain();
    expect(r.recomputed).toBe(1);
    expect(await orders().findOneByOrFail({ id: o.id })).toMatchObject({ total: 5, lineCount: 2 });
    // No warning, and no mark of its own: the drain ends with nothing pending.
    expect(warnings('is derived')).toEqual([]);
    expect(await pending()).toEqual([]);
  });

  it('a stale copy saved back warns once per column and marks the parent again, which heals it', async () => {
    const o = await orders().save({ customer: 'c' });
    const stale = await orders().findOneByOrFail({ id: o.id });
    await db.dataSource.getRepository(CpColLine).save({ sku: 'a', qty: 4, orderId: o.id });
    await coalescer.drain();
    expect(await orders().findOneByOrFail({ id: o.id })).toMatchObject({ total: 4, lineCount: 1 });
    stale.customer = 'renamed';
    await orders().save(stale);
    // The stale copy overwrote the recomputed values...
    expect(await orders().findOneByOrFail({ id: o.id })).toMatchObject({ total: 0, lineCount: 0 });
    const said = warnings('is derived');
    expect(said.map((l) => l.column).sort()).toEqual(['lineCount', 'total']);
    expect(said[0]?.msg).toMatch(/reload the entity before saving it/);
    expect(said[0]?.msg).not.toMatch(/update: false/);
    expect(said[0]?.msg).toMatch(/marked again/);
    expect(await pending()).toEqual([`CpOrder:${o.id}`]);
    // ...and one more recompute heals it.
    recomputed.length = 0;
    await coalescer.drain();
    expect(recomputed).toEqual([o.id]);
    expect(await orders().findOneByOrFail({ id: o.id })).toMatchObject({ total: 4, lineCount: 1, customer: 'renamed' });
    // Once per column: a second stale write marks again but says nothing new.
    stale.customer = 'again';
    await orders().save(stale);
    expect(warnings('is derived')).toHaveLength(2);
    expect(await pending()).toEqual([`CpOrder:${o.id}`]);
  });

  it("a recompute writing through repository.update() works, and the warning's advice keeps it working", async () => {
    writes = 'update';
    const o = await orders().save({ customer: 'c' });
    const stale = await orders().findOneByOrFail({ id: o.id });
    await db.dataSource.getRepository(CpColLine).save([
      { sku: 'a', qty: 2, orderId: o.id },
      { sku: 'b', qty: 3, orderId: o.id },
    ]);
    expect((await coalescer.drain()).recomputed).toBe(1);
    expect(await orders().findOneByOrFail({ id: o.id })).toMatchObject({ total: 5, lineCount: 2 });
    expect(warnings('is derived')).toEqual([]);
    expect(await pending()).toEqual([]);
    // The stale copy saved back whole: the warning, and its advice.
    stale.customer = 'stale';
    await orders().save(stale);
    const said = warnings('is derived');
    expect(said.map((l) => l.column).sort()).toEqual(['lineCount', 'total']);
    const advice = said[0]?.msg ?? '';
    expect(advice).not.toMatch(/update: false/);
    expect(advice).toMatch(/reload the entity before saving it, or write only the columns you changed/);
    expect(advice).toMatch(/repository\.update\(id, \{ name \}\), or save\(\{ id, name \}\)/);
    // One more recompute, through update(), heals it.
    recomputed.length = 0;
    await coalescer.drain();
    expect(recomputed).toEqual([o.id]);
    expect(await orders().findOneByOrFail({ id: o.id })).toMatchObject({ total: 5, lineCount: 2, customer: 'stale' });
    // Each way the warning advises writes the name and leaves the derived columns alone.
    const reloaded = await orders().findOneByOrFail({ id: o.id });
    reloaded.customer = 'reloaded';
    await orders().save(reloaded);
    await orders().update(o.id, { customer: 'updated' });
    await orders().save({ id: o.id, customer: 'partial' });
    expect(warnings('is derived')).toHaveLength(2);
    expect(await pending()).toEqual([]);
    // And the recompute keeps working after them.
    await db.dataSource.getRepository(CpColLine).save({ sku: 'c', qty: 4, orderId: o.id });
    recomputed.length = 0;
    await coalescer.drain();
    expect(recomputed).toEqual([o.id]);
    expect(await orders().findOneByOrFail({ id: o.id })).toMatchObject({ total: 9, lineCount: 3, customer: 'partial' });
  });

  it('a host save that does not touch derived columns says nothing', async () => {
    const o = await orders().save({ customer: 'c' });
    await orders().save({ id: o.id, customer: 'd' });
    expect(warnings('is derived')).toEqual([]);
    expect(await pending()).toEqual([]);
  });

  it('a child change with no resolvable parent warns once per entity and site, saying what to do', async () => {
    const insert = (target: typeof CpRelLine | typeof CpPlainLine, sku: string) =>
      db.dataSource.createQueryBuilder().insert().into(target).values({ sku }).updateEntity(false).execute();
    await insert(CpRelLine, 'u1');
    await insert(CpRelLine, 'u2');
    await insert(CpPlainLine, 'u3');
    const said = warnings('could not be found');
    expect(said.map((l) => [l.child, l.site])).toEqual([
      ['CpRelLine', 'insert/querybuilder'],
      ['CpPlainLine', 'insert/querybuilder'],
    ]);
    expect(said[0]?.msg).toMatch(/coalescer\.mark\(CpOrder, ids\)/);
    expect(said[0]?.msg).toMatch(/save\(\) \/ remove\(\)/);
    // The repeat is still there, at debug level.
    expect(log.lines.filter((l) => l.level === 20 && l.site === 'insert/querybuilder')).toHaveLength(1);
    expect(await pending()).toEqual([]);
  });
});
