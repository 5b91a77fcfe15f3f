import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Column, Entity, EntitySchema, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Coalescer } from '../../src';
import {
  countMismatches,
  createTestDb,
  dispose,
  monitorNamespace,
  Order,
  OrderLine,
  RecomputeLog,
  redisUrl,
  shopCoalescer,
  suffix,
  testLogger,
  type TestDb,
} from '../support';

describe('capture: what the subscriber marks', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  let log: RecomputeLog;

  beforeAll(async () => {
    db = await createTestDb('capture');
  });
  afterAll(async () => {
    await db.destroy();
  });
  afterEach(async () => {
    // Leave every order fresh, so each test's mismatch count speaks of its own orders only.
    await coalescer.drain();
    await dispose(coalescer);
  });

  async function fresh(): Promise<void> {
    log = new RecomputeLog();
    coalescer = shopCoalescer(db.dataSource, { log });
    await coalescer.attach();
  }
  const orders = () => db.dataSource.getRepository(Order);
  const lines = () => db.dataSource.getRepository(OrderLine);
  const heat = async (): Promise<Record<string, number>> => {
    // Marks leave after COMMIT in the background: wait for them, as a reader in the same process must.
    await coalescer.flushed();
    return Object.fromEntries((await coalescer.hottest(100)).map((h) => [h.member, h.heat]));
  };
  async function order(customer = 'c'): Promise<number> {
    return (await orders().save(orders().create({ customer }))).id;
  }
  async function line(orderId: number, qty = 1): Promise<OrderLine> {
    return lines().save(lines().create({ orderId, sku: `s${suffix()}`, qty, unitPrice: '2.00' }));
  }

  it('insert, update, remove, soft remove and recover each mark the parent', async () => {
    await fresh();
    const a = await order();
    const l = await line(a);
    expect(await heat()).toEqual({ [`Order:${a}`]: 1 });
    l.qty = 5;
    await lines().save(l);
    expect(await heat()).toEqual({ [`Order:${a}`]: 2 });
    await lines().softRemove(l);
    expect(await heat()).toEqual({ [`Order:${a}`]: 3 });
    await lines().recover(l);
    expect(await heat()).toEqual({ [`Order:${a}`]: 4 });
    await lines().remove(l);
    expect(await heat()).toEqual({ [`Order:${a}`]: 5 });
    const r = await coalescer.drain();
    expect(r.recomputed).toBe(1);
    expect(log.of(a)).toBe(1);
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('a save with no changes marks nothing', async () => {
    await fresh();
    const a = await order();
    const l = await line(a);
    await coalescer.drain();
    const again = await lines().findOneByOrFail({ id: l.id });
    await lines().save(again);
    expect(await heat()).toEqual({});
  });

  it('a line moved from order A to order B marks both', async () => {
    await fresh();
    const a = await order();
    const b = await order();
    const l = await line(a, 3);
    await coalescer.drain();
    const moved = await lines().findOneByOrFail({ id: l.id });
    moved.orderId = b;
    await lines().save(moved);
    expect(await heat()).toEqual({ [`Order:${a}`]: 1, [`Order:${b}`]: 1 });
    await coalescer.drain();
    const [oa, ob] = [await orders().findOneByOrFail({ id: a }), await orders().findOneByOrFail({ id: b })];
    expect([oa.lineCount, ob.lineCount]).toEqual([0, 1]);
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('a partial save that does not touch the foreign key marks the current parent', async () => {
    await fresh();
    const a = await order();
    const l = await line(a);
    await coalescer.drain();
    await lines().save({ id: l.id, qty: 9 });
    expect(await heat()).toEqual({ [`Order:${a}`]: 1 });
  });

  it('50 lines in one transaction are one round trip, one member of heat 50 and one recompute', async () => {
    await fresh();
    const a = await order();
    const sent = await monitorNamespace(coalescer.namespace, async () => {
      await db.dataSource.transaction(async (m) => {
        for (let i = 0; i < 50; i += 1)
          await m.save(m.create(OrderLine, { orderId: a, sku: `x${i}`, qty: 1, unitPrice: '1.00' }));
      });
      await coalescer.flushed();
    });
    expect(sent).toHaveLength(1);
    expect(await heat()).toEqual({ [`Order:${a}`]: 50 });
    expect((await coalescer.drain()).recomputed).toBe(1);
    expect(log.total).toBe(1);
  });

  it('N saves across M parents drained once are M recomputes', async () => {
    await fresh();
    const ids = [await order(), await order(), await order()];
    for (let i = 0; i < 30; i += 1) await line(ids[i % 3] as number);
    const r = await coalescer.drain({ concurrency: 4 });
    expect(r.recomputed).toBe(3);
    expect(ids.map((id) => log.of(id))).toEqual([1, 1, 1]);
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('a rollback sends nothing', async () => {
    await fresh();
    const a = await order();
    const sent = await monitorNamespace(coalescer.namespace, async () => {
      await expect(
        db.dataSource.transaction(async (m) => {
          await m.save(m.create(OrderLine, { orderId: a, sku: 'r', qty: 1, unitPrice: '1.00' }));
          throw new Error('form rejected');
        }),
      ).rejects.toThrow('form rejected');
      await coalescer.flushed();
    });
    expect(sent).toHaveLength(0);
    expect(await heat()).toEqual({});
  });

  it('nested transactions flush once at the outer commit; a rolled-back savepoint drops only its marks', async () => {
    await fresh();
    const a = await order();
    const b = await order();
    const qr = db.dataSource.createQueryRunner();
    await qr.connect();
    let sent: string[] = [];
    try {
      sent = await monitorNamespace(coalescer.namespace, async () => {
        await qr.startTransaction();
        await qr.manager.save(qr.manager.create(OrderLine, { orderId: a, sku: 'n1', qty: 1, unitPrice: '1.00' }));
        await qr.startTransaction(); // SAVEPOINT
        await qr.manager.save(qr.manager.create(OrderLine, { orderId: a, sku: 'n2', qty: 1, unitPrice: '1.00' }));
        await qr.commitTransaction(); // RELEASE SAVEPOINT: nothing sent yet
        await qr.startTransaction(); // SAVEPOINT
        await qr.manager.save(qr.manager.create(OrderLine, { orderId: b, sku: 'n3', qty: 1, unitPrice: '1.00' }));
        await qr.rollbackTransaction(); // ROLLBACK TO SAVEPOINT: b's mark is dropped
        await qr.commitTransaction(); // COMMIT
        await coalescer.flushed();
      });
    } finally {
      await qr.release();
    }
    expect(sent).toHaveLength(1);
    expect(await heat()).toEqual({ [`Order:${a}`]: 2 });
  });

  it('a nested manager.transaction flushes once, at the outer commit', async () => {
    await fresh();
    const a = await order();
    const sent = await monitorNamespace(coalescer.namespace, async () => {
      await db.dataSource.transaction(async (outer) => {
        await outer.save(outer.create(OrderLine, { orderId: a, sku: 'o', qty: 1, unitPrice: '1.00' }));
        await outer.transaction(async (inner) => {
          await inner.save(inner.create(OrderLine, { orderId: a, sku: 'i', qty: 1, unitPrice: '1.00' }));
        });
      });
      await coalescer.flushed();
    });
    expect(sent).toHaveLength(1);
    expect(await heat()).toEqual({ [`Order:${a}`]: 2 });
  });

  it('changes outside a transaction are marked at once', async () => {
    await fresh();
    const a = await order();
    const b = await order();
    await lines().save(lines().create({ orderId: a, sku: 'nt', qty: 1, unitPrice: '1.00' }), { transaction: false });
    expect(await heat()).toEqual({ [`Order:${a}`]: 1 });
    const l = await line(a);
    await coalescer.drain();
    // QueryBuilder update with the key in SET: the new parent is in SET, the old one is read before the statement.
    await lines().createQueryBuilder().update().set({ orderId: b }).where('id = :id', { id: l.id }).execute();
    expect(await heat()).toEqual({ [`Order:${a}`]: 1, [`Order:${b}`]: 1 });
  });

  it('bulk delete by criteria marks the parents of the rows it deletes; mark() adds heat', async () => {
    await fresh();
    const a = await order();
    await line(a);
    await line(a);
    await coalescer.drain();
    await lines().delete({ orderId: a });
    // The rows are read before the DELETE runs: one mark per deleted line.
    expect(await heat()).toEqual({ [`Order:${a}`]: 2 });
    // Two marks of one parent are one member: its heat grows by 2.
    expect(await coalescer.mark(Order, [a, a])).toBe(1);
    expect(await heat()).toEqual({ [`Order:${a}`]: 4 });
    await coalescer.drain();
    expect((await orders().findOneByOrFail({ id: a })).lineCount).toBe(0);
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('a save never fails when Redis cannot be reached, and the row is committed', async () => {
    log = new RecomputeLog();
    coalescer = shopCoalescer(db.dataSource, { log, redis: 'redis://127.0.0.1:1', markTimeoutMs: 200 });
    await coalescer.attach().catch(() => undefined);
    const detached = coalescer;
    try {
      const a = await order();
      const saved = await db.dataSource.transaction(async (m) =>
        m.save(m.create(OrderLine, { orderId: a, sku: 'down', qty: 1, unitPrice: '1.00' })),
      );
      expect(await lines().findOneBy({ id: saved.id })).not.toBeNull();
      expect((await detached.stats().catch(() => null)) ?? { marker: null }).toBeDefined();
    } finally {
      detached.detach();
    }
    // dispose() in afterEach clears keys through the same unreachable Redis: swap in a live one.
    coalescer = shopCoalescer(db.dataSource);
    await detached.close();
  });
});

// A child with two parents, registered by an EntitySchema and by entity name.
@Entity({ name: 'cap_team' })
class Team {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'int', default: 0 }) members!: number;
}
@Entity({ name: 'cap_project' })
class Project {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'int', default: 0 }) tasks!: number;
}
const Task = new EntitySchema<{ id: number; teamId: number; projectId: number; title: string }>({
  name: 'Task',
  tableName: 'cap_task',
  columns: {
    id: { type: 'int', primary: true, generated: true },
    teamId: { type: 'int', name: 'team_id' },
    projectId: { type: 'int', name: 'project_id' },
    title: { type: 'varchar' },
  },
});
@Entity({ name: 'cap_tag' })
class Tag {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar' }) code!: string;
}
@Entity({ name: 'cap_tagging' })
class Tagging {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @ManyToOne(() => Tag)
  @JoinColumn({ name: 'tag_id' })
  tag!: Tag;
}

describe('capture: entity forms and several parents', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  const seen: string[] = [];
  beforeAll(async () => {
    db = await createTestDb('capture_forms', { entities: [Team, Project, Task, Tag, Tagging] });
    coalescer = new Coalescer({
      dataSource: db.dataSource,
      redis: redisUrl(),
      namespace: `forms-${suffix()}`,
      logger: testLogger(),
    });
    coalescer.parent<number>(Team, { recompute: async (id) => void seen.push(`Team:${id}`) });
    coalescer.parent<number>('Project', { recompute: async (id) => void seen.push(`Project:${id}`) });
    coalescer.parent<number>(Tag, { recompute: async (id) => void seen.push(`Tag:${id}`) });
    coalescer.child(Task, { parent: Team, foreignKey: 'teamId' });
    coalescer.child('Task', { parent: 'Project', foreignKey: 'projectId' });
    coalescer.child(Tagging, { parent: Tag, foreignKey: 'tag' });
    await coalescer.attach();
  });
  afterAll(async () => {
    await dispose(coalescer);
    await db.destroy();
  });

  it('a child of two parents (EntitySchema, entity name) marks both', async () => {
    const team = await db.dataSource.getRepository(Team).save({ members: 0 });
    const project = await db.dataSource.getRepository(Project).save({ tasks: 0 });
    await db.dataSource.getRepository(Task).save({ teamId: team.id, projectId: project.id, title: 't' });
    await coalescer.flushed();
    const hot = (await coalescer.hottest(10)).map((h) => h.member).sort();
    expect(hot).toEqual([`Project:${project.id}`, `Team:${team.id}`]);
    await coalescer.drain();
    expect(seen.sort()).toEqual([`Project:${project.id}`, `Team:${team.id}`]);
  });

  it('a foreign key given as a many-to-one relation is read from the relation', async () => {
    const tag = await db.dataSource.getRepository(Tag).save({ code: 'x' });
    await db.dataSource.getRepository(Tagging).save({ tag });
    await coalescer.flushed();
    expect((await coalescer.hottest(10)).map((h) => h.member)).toEqual([`Tag:${tag.id}`]);
  });
});
