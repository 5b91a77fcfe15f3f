import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DataSource } from 'typeorm';
import { databaseUrl, DIALECTS, monitorNamespace, typeormVersion } from '../support';
import {
  captureHarness,
  CpColLine,
  CpDelLine,
  CpOrder,
  CpPlainLine,
  CpRelLine,
  CpSoftLine,
  m,
  type CaptureHarness,
} from '../support/capture-entities';

// Every write path TypeORM reports for a one-to-many child marks the right parents, old and new,
// on PostgreSQL and on MariaDB: the marks are read back from Redis.
describe.each(DIALECTS)('capture paths of one-to-many children (%s)', (dialect) => {
  let h: CaptureHarness;
  beforeAll(async () => {
    h = await captureHarness(`cap_paths_${dialect}`, dialect);
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(async () => {
    await h.reset();
  });

  const ds = () => h.db.dataSource;
  const orders = () => ds().getRepository(CpOrder);
  const newOrder = async (lines: Partial<CpOrder> = {}): Promise<CpOrder> => {
    const o = await orders().save(orders().create({ customer: 'c', ...lines }));
    await h.reset();
    return o;
  };
  const withLines = (id: number) =>
    orders().findOneOrFail({ where: { id }, relations: { relLines: true, colLines: true, delLines: true, softLines: true } });

  it('cascade insert from the parent side marks it, whether the key is a relation or a column', async () => {
    const o = await orders().save(
      orders().create({
        customer: 'c',
        relLines: [{ sku: 'r1' }, { sku: 'r2' }],
        colLines: [{ sku: 'c1' }],
        softLines: [{ sku: 's1' }],
      }),
    );
    expect(await h.heat()).toEqual({ [`CpOrder:${o.id}`]: 4 });
    // Relation-only keys are read back by id: one SELECT per child table, not one per row.
    expect(h.lookups.queries).toHaveLength(2);
  });

  it('cascade update from the parent side marks it', async () => {
    const o = await newOrder({ relLines: [{ sku: 'r' }] as CpRelLine[], colLines: [{ sku: 'c' }] as CpColLine[] });
    const loaded = await withLines(o.id);
    (loaded.relLines?.[0] as CpRelLine).qty = 5;
    (loaded.colLines?.[0] as CpColLine).qty = 6;
    await orders().save(loaded);
    expect(await h.members()).toEqual(m('CpOrder', o.id));
  });

  it('cascade remove from the parent side marks it for each child removed', async () => {
    const o = await newOrder({ relLines: [{ sku: 'cascaded' }] as CpRelLine[], colLines: [{ sku: 'cascaded' }] as CpColLine[] });
    await orders().remove(await orders().findOneOrFail({ where: { id: o.id }, relations: { relLines: true, colLines: true } }));
    expect(await ds().getRepository(CpRelLine).countBy({ sku: 'cascaded' })).toBe(0);
    expect(await ds().getRepository(CpColLine).countBy({ sku: 'cascaded' })).toBe(0);
    // The parent is gone: its recompute finds no row, as for any deleted parent. TypeORM 0.3
    // never removes the children itself (the database's ON DELETE CASCADE does, unseen), so it
    // reports nothing: nothing is lost, the only parent touched is the one deleted.
    const typeorm03 = typeormVersion().startsWith('0.3.');
    expect(await h.heat()).toEqual(typeorm03 ? {} : { [`CpOrder:${o.id}`]: 2 });
  });

  it('a child pushed into parent.children and saved with the parent marks it', async () => {
    const o = await newOrder();
    const loaded = await withLines(o.id);
    loaded.relLines?.push(ds().getRepository(CpRelLine).create({ sku: 'pushed' }));
    loaded.colLines?.push(ds().getRepository(CpColLine).create({ sku: 'pushed' }));
    await orders().save(loaded);
    expect(await h.heat()).toEqual({ [`CpOrder:${o.id}`]: 2 });
  });

  it('children orphaned by a stale list (nullify, delete, soft-delete) mark the parent they left', async () => {
    const o = await newOrder({
      relLines: [{ sku: 'keep' }, { sku: 'drop' }] as CpRelLine[],
      colLines: [{ sku: 'keep' }, { sku: 'drop' }] as CpColLine[],
      delLines: [{ sku: 'keep' }, { sku: 'drop' }] as CpDelLine[],
      softLines: [{ sku: 'keep' }, { sku: 'drop' }] as CpSoftLine[],
    });
    const loaded = await withLines(o.id);
    loaded.relLines = loaded.relLines?.filter((l) => l.sku === 'keep');
    loaded.colLines = loaded.colLines?.filter((l) => l.sku === 'keep');
    loaded.delLines = loaded.delLines?.filter((l) => l.sku === 'keep');
    loaded.softLines = loaded.softLines?.filter((l) => l.sku === 'keep');
    await orders().save(loaded);
    expect(await h.heat()).toEqual({ [`CpOrder:${o.id}`]: 4 });
    // What TypeORM did to the orphans, so the marks speak of real changes.
    const [rel] = (await ds().query(`SELECT order_id FROM cp_rel_line WHERE sku = 'drop'`)) as { order_id: unknown }[];
    expect(rel?.order_id).toBeNull();
    expect(await ds().getRepository(CpDelLine).countBy({ sku: 'drop' })).toBe(0);
    expect(
      await ds()
        .getRepository(CpSoftLine)
        .count({ where: { sku: 'drop' }, withDeleted: true }),
    ).toBe(1);
    expect(await ds().getRepository(CpSoftLine).countBy({ sku: 'drop' })).toBe(0);
  });

  it('a child moved by pushing it into another parent list marks both (relation key and column key)', async () => {
    const a = await newOrder({ relLines: [{ sku: 'r' }] as CpRelLine[], colLines: [{ sku: 'c' }] as CpColLine[] });
    const b = await newOrder();
    const bLoaded = await withLines(b.id);
    // Loaded on their own, without their relation: the event carries neither the old key nor the new one.
    bLoaded.relLines?.push(await ds().getRepository(CpRelLine).findOneByOrFail({ id: a.relLines?.[0]?.id }));
    bLoaded.colLines?.push(await ds().getRepository(CpColLine).findOneByOrFail({ id: a.colLines?.[0]?.id }));
    await orders().save(bLoaded);
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
  });

  it('a child bound by id to another parent without cascade marks both', async () => {
    const a = await newOrder();
    const line = await ds()
      .getRepository(CpPlainLine)
      .save({ sku: 'p', order: { id: a.id } as CpOrder });
    const b = await newOrder();
    const bLoaded = await orders().findOneOrFail({ where: { id: b.id }, relations: { plainLines: true } });
    bLoaded.plainLines?.push({ id: line.id } as CpPlainLine);
    await orders().save(bLoaded);
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
    const [row] = (await ds().query(`SELECT order_id FROM cp_plain_line WHERE id = ${line.id}`)) as { order_id: unknown }[];
    expect(Number(row?.order_id)).toBe(b.id);
  });

  it('RelationQueryBuilder add / remove / set mark the old and the new parent', async () => {
    const a = await newOrder({ relLines: [{ sku: 'r' }] as CpRelLine[], colLines: [{ sku: 'c' }] as CpColLine[] });
    const b = await newOrder();
    const rel = a.relLines?.[0] as CpRelLine;
    const col = a.colLines?.[0] as CpColLine;
    await ds().createQueryBuilder().relation(CpOrder, 'relLines').of(b).add(rel);
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
    await h.reset();
    await ds().createQueryBuilder().relation(CpOrder, 'relLines').of(b).remove(rel);
    expect(await h.members()).toEqual(m('CpOrder', b.id));
    await h.reset();
    await ds().createQueryBuilder().relation(CpRelLine, 'order').of(rel).set(a);
    expect(await h.members()).toEqual(m('CpOrder', a.id));
    await h.reset();
    await ds().createQueryBuilder().relation(CpColLine, 'order').of(col.id).set(b.id);
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
    await h.reset();
    await ds().createQueryBuilder().relation(CpOrder, 'colLines').of(a).add(col.id);
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
  });

  it('a child saved with its key only as a relation marks the old and the new parent', async () => {
    const a = await newOrder({ relLines: [{ sku: 'r' }] as CpRelLine[] });
    const b = await newOrder();
    const lines = ds().getRepository(CpRelLine);
    const line = await lines.findOneByOrFail({ id: a.relLines?.[0]?.id });
    line.order = b;
    await lines.save(line);
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
    await h.reset();
    // Partial save: the row's parent is read, as the event has no key.
    await lines.save({ id: line.id, qty: 3 });
    expect(await h.members()).toEqual(m('CpOrder', b.id));
    await h.reset();
    await lines.remove(await lines.findOneByOrFail({ id: line.id }));
    expect(await h.members()).toEqual(m('CpOrder', b.id));
    await h.reset();
    const soft = ds().getRepository(CpSoftLine);
    const s = await soft.save({ sku: 's', order: { id: a.id } as CpOrder });
    await h.reset();
    await soft.softRemove(await soft.findOneByOrFail({ id: s.id }));
    expect(await h.members()).toEqual(m('CpOrder', a.id));
    await h.reset();
    await soft.recover(await soft.findOneOrFail({ where: { id: s.id }, withDeleted: true }));
    expect(await h.members()).toEqual(m('CpOrder', a.id));
  });

  it('QueryBuilder and repository writes by criteria mark the parents of the rows they pick, old and new', async () => {
    const a = await newOrder({
      colLines: [{ sku: 'q1' }, { sku: 'q2' }] as CpColLine[],
      relLines: [{ sku: 'q3' }] as CpRelLine[],
      softLines: [{ sku: 'q4' }] as CpSoftLine[],
    });
    const b = await newOrder();
    const c = await newOrder({ colLines: [{ sku: 'q5' }] as CpColLine[] });
    const col = () => ds().getRepository(CpColLine);
    await col()
      .createQueryBuilder()
      .update()
      .set({ orderId: b.id })
      .where('sku IN (:...s)', { s: ['q1', 'q5'] })
      .execute();
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id, c.id));
    await h.reset();
    await col().update({ sku: 'q2' }, { qty: 9 });
    expect(await h.members()).toEqual(m('CpOrder', a.id));
    await h.reset();
    // The key written by SQL: read again after the statement.
    await col()
      .createQueryBuilder()
      .update()
      .set({ orderId: () => String(c.id) })
      .where('sku = :s', { s: 'q2' })
      .execute();
    expect(await h.members()).toEqual(m('CpOrder', a.id, c.id));
    await h.reset();
    await ds()
      .getRepository(CpRelLine)
      .update({ sku: 'q3' }, { order: { id: b.id } });
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
    await h.reset();
    await ds().getRepository(CpSoftLine).softDelete({ sku: 'q4' });
    expect(await h.members()).toEqual(m('CpOrder', a.id));
    await h.reset();
    await ds().getRepository(CpSoftLine).restore({ sku: 'q4' });
    expect(await h.members()).toEqual(m('CpOrder', a.id));
    await h.reset();
    await col().delete({ orderId: b.id });
    expect(await h.heat()).toEqual({ [`CpOrder:${b.id}`]: 2 });
  });

  it('in one transaction every path sends one round trip after COMMIT; a rollback sends nothing', async () => {
    const a = await newOrder({ relLines: [{ sku: 'x' }, { sku: 'y' }] as CpRelLine[] });
    const b = await newOrder();
    const c = await newOrder();
    const sent = await monitorNamespace(h.coalescer.namespace, async () => {
      await ds().transaction(async (tx) => {
        const loaded = await tx.findOneOrFail(CpOrder, { where: { id: a.id }, relations: { relLines: true } });
        loaded.relLines = loaded.relLines?.filter((l) => l.sku === 'x'); // orphan y
        await tx.save(loaded);
        await tx
          .createQueryBuilder()
          .relation(CpOrder, 'relLines')
          .of(b)
          .add(loaded.relLines?.[0] as CpRelLine);
        await tx.save(
          tx.create(CpOrder, { id: c.id, customer: 'c', relLines: Array.from({ length: 20 }, (_, i) => ({ sku: `n${i}` })) }),
        );
      });
      await h.coalescer.flushed();
    });
    expect(sent).toHaveLength(1);
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id, c.id));
    expect((await h.heat())[`CpOrder:${c.id}`]).toBe(20);
    await h.reset();
    await expect(
      ds().transaction(async (tx) => {
        await tx
          .createQueryBuilder()
          .relation(CpOrder, 'relLines')
          .of(a)
          .add((await tx.findOneByOrFail(CpRelLine, { sku: 'x' })).id);
        throw new Error('form rejected');
      }),
    ).rejects.toThrow('form rejected');
    expect(await h.heat()).toEqual({});
  });

  it('outside a transaction a move through a parent list marks both once the write is done', async () => {
    const a = await newOrder({ relLines: [{ sku: 'nt' }] as CpRelLine[] });
    const b = await newOrder();
    const bLoaded = await withLines(b.id);
    bLoaded.relLines?.push(await ds().getRepository(CpRelLine).findOneByOrFail({ id: a.relLines?.[0]?.id }));
    await orders().save(bLoaded, { transaction: false });
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
  });

  it('explicit key columns need no lookup', async () => {
    const o = await orders().save(
      orders().create({ customer: 'c', colLines: Array.from({ length: 10 }, (_, i) => ({ sku: `k${i}` })) }),
    );
    const loaded = await withLines(o.id);
    for (const l of loaded.colLines ?? []) l.qty = 7;
    await orders().save(loaded);
    expect(await h.heat()).toEqual({ [`CpOrder:${o.id}`]: 20 });
    expect(h.lookups.queries).toEqual([]);
  });
});

// A failed statement aborts a PostgreSQL transaction: a lookup runs in a savepoint so that its
// failure never fails the host's. (MySQL and MariaDB keep a transaction after a failed statement.)
describe('a lookup that fails on PostgreSQL', () => {
  let h: CaptureHarness;
  const role = `cap_limited_${Date.now().toString(36)}`;
  beforeAll(async () => {
    h = await captureHarness('cap_lookup_fail', 'postgres');
    const schema = h.db.schema;
    // May update lines and read their sku, but not read their order_id: the UPDATE works, the lookup cannot.
    await h.db.dataSource.query(`CREATE ROLE ${role}`);
    await h.db.dataSource.query(`GRANT USAGE ON SCHEMA "${schema}" TO ${role}`);
    await h.db.dataSource.query(`GRANT UPDATE (order_id, qty) ON "${schema}".cp_col_line TO ${role}`);
    await h.db.dataSource.query(`GRANT SELECT (id, sku) ON "${schema}".cp_col_line TO ${role}`);
  });
  afterAll(async () => {
    await h.close();
    const admin = new DataSource({ type: 'postgres', url: databaseUrl() });
    await admin.initialize();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.destroy();
  });

  it('never fails the host transaction: it warns, and the parent the SET names is still marked', async () => {
    const ds = h.db.dataSource;
    const a = await ds.getRepository(CpOrder).save({ customer: 'a', colLines: [{ sku: 'lf' }] as CpColLine[] });
    const b = await ds.getRepository(CpOrder).save({ customer: 'b' });
    await h.reset();
    await ds.transaction(async (tx) => {
      await tx.query(`SET LOCAL ROLE ${role}`);
      await tx.createQueryBuilder().update(CpColLine).set({ orderId: b.id }).where('sku = :s', { s: 'lf' }).execute();
      await tx.query('RESET ROLE');
      await tx.save(tx.create(CpColLine, { sku: 'after', orderId: a.id }));
    });
    expect(await ds.getRepository(CpColLine).countBy({ orderId: b.id })).toBe(1);
    expect(await ds.getRepository(CpColLine).countBy({ sku: 'after' })).toBe(1);
    const failed = h.log.lines.filter((l) => l.level === 40 && l.site === 'update/querybuilder' && l.child === 'CpColLine');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.msg).toMatch(/the lookup of the rows it writes failed: .*permission denied/);
    // b from the SET, a from the line saved after: the old parent (a) of the moved line is the one lost.
    expect(await h.members()).toEqual(m('CpOrder', a.id, b.id));
  });
});
