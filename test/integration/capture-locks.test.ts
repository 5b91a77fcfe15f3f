import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Column,
  DataSource,
  Entity,
  JoinColumn,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
  type EntityManager,
} from 'typeorm';
import { Coalescer, count } from '../../src';
import { createTestDb, databaseUrl, DIALECTS, dispose, redisUrl, suffix, waitFor, type Dialect, type TestDb } from '../support';
import { recordingLogger } from '../support/capture-entities';

// A lookup of capture runs in the host's transaction and locks the rows the host's next statement
// locks. When it deadlocks, the host must see the deadlock as it would without capture: its
// transaction fails whole (no half commit), and a retry leaves every parent right after a drain.

@Entity({ name: 'lk_article' })
class LkArticle {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) title!: string;
  @Column({ name: 'comment_count', type: 'int', default: 0 }) commentCount!: number;
  // No cascade: a comment pushed here is bound by id (UPDATE lk_comment SET article_id = ? WHERE id IN (?)).
  @OneToMany(() => LkComment, (c) => c.article) comments?: LkComment[];
}

@Entity({ name: 'lk_comment' })
class LkComment {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) body!: string;
  /** A natural key, for upserts. */
  @Column({ type: 'varchar', length: 40, unique: true, nullable: true }) slug!: string | null;
  @Column({ name: 'article_id', type: 'int', nullable: true }) articleId!: number | null;
  @ManyToOne(() => LkArticle, (a) => a.comments, { nullable: true })
  @JoinColumn({ name: 'article_id' })
  article?: LkArticle | null;
}

/** Key only as a relation: a partial save of it reads the row's parent before the UPDATE. */
@Entity({ name: 'lk_reaction' })
class LkReaction {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 20 }) kind!: string;
  @ManyToOne(() => LkArticle, { nullable: true })
  @JoinColumn({ name: 'article_id' })
  article?: LkArticle | null;
}

/** Rows a transaction writes to weigh more than another: InnoDB rolls back the lighter one of a deadlock. */
@Entity({ name: 'lk_ballast' })
class LkBallast {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'int', default: 0 }) n!: number;
}

const ENTITIES = [LkArticle, LkComment, LkReaction, LkBallast];

interface Seeded {
  /** A comment of article A. */
  x: number;
  /** Its slug. */
  slug: string;
  /** Article B. */
  b: number;
  /** A reaction to article A. */
  r: number;
}

/** Resolves when `open()` is called: one step of a two-transaction schedule. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

/** The driver's code of a failed query, looked up through TypeORM's wrapper. */
function driverCode(error: unknown): unknown {
  const e = error as { driverError?: { code?: unknown }; code?: unknown } | undefined;
  return e?.driverError?.code ?? e?.code;
}

describe.each(DIALECTS)('capture lookups and the host transaction (%s)', (dialect: Dialect) => {
  let db: TestDb;
  let coalescer: Coalescer;
  const log = recordingLogger();
  const pg = dialect === 'postgres';
  const deadlock = pg ? '40P01' : 'ER_LOCK_DEADLOCK';

  beforeAll(async () => {
    db = await createTestDb(`cap_locks_${dialect}`, { dialect, entities: ENTITIES });
    coalescer = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: `lk-${suffix()}`, logger: log.logger });
    coalescer.parent<number>(LkArticle, { aggregates: { commentCount: count(LkComment) } });
    coalescer.child(LkComment, { parent: LkArticle, foreignKey: 'articleId' });
    coalescer.child(LkReaction, { parent: LkArticle, foreignKey: 'article' });
    await coalescer.attach();
    await db.dataSource.getRepository(LkBallast).save(Array.from({ length: 40 }, () => ({ n: 0 })));
  });
  afterAll(async () => {
    await dispose(coalescer);
    await db.destroy();
  });

  const ds = (): DataSource => db.dataSource;

  /** The session id of the transaction's connection. */
  const sessionOf = async (tx: EntityManager): Promise<number> => {
    const [row] = (await tx.query(pg ? 'SELECT pg_backend_pid() AS id' : 'SELECT CONNECTION_ID() AS id')) as { id: unknown }[];
    return Number(row?.id);
  };
  /**
   * True while the session waits for a row lock. MariaDB: while it runs a locking read (its
   * INNODB_TRX says RUNNING while a read by primary key waits in the optimizer).
   */
  const waitsForLock = async (session: number): Promise<boolean> => {
    const rows = (await ds().query(
      pg
        ? `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`
        : `SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND = 'Query' AND INFO LIKE '%FOR UPDATE%'`,
      [session],
    )) as unknown[];
    return rows.length > 0;
  };

  /** Drains, then checks every article against SQL and that no Redis set holds anything. */
  const expectSettled = async (): Promise<void> => {
    await coalescer.flushed();
    await coalescer.drain();
    const truth = (await ds().query(
      'SELECT a.id AS id, a.comment_count AS stored, (SELECT COUNT(*) FROM lk_comment c WHERE c.article_id = a.id) AS actual FROM lk_article a',
    )) as { id: unknown; stored: unknown; actual: unknown }[];
    for (const row of truth) expect(Number(row.stored), `article ${String(row.id)}`).toBe(Number(row.actual));
    expect(await coalescer.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0, settling: 0 });
  };

  // T1 changes a child after updating B: capture first reads (and locks) the child, which T2
  // holds; T2 then waits for B. Each way of writing the child runs a different lookup.
  const writes: [string, (tx: EntityManager, ids: Seeded) => Promise<void>][] = [
    [
      "a comment moved through B's list (the lookup of the statement's rows)",
      async (tx, { x, b }) => {
        const loaded = await tx.findOneOrFail(LkArticle, { where: { id: b }, relations: { comments: true } });
        loaded.comments?.push(await tx.findOneByOrFail(LkComment, { id: x }));
        await tx.save(loaded);
      },
    ],
    [
      'an upsert moving a comment to B (the lookup of the rows it conflicts with)',
      async (tx, { slug, b }) => {
        await tx.getRepository(LkComment).upsert({ slug, body: 'x', articleId: b }, ['slug']);
      },
    ],
    [
      'a partial save of a reaction (the lookup of its row by primary key)',
      async (tx, { r }) => {
        await tx.getRepository(LkReaction).save({ id: r, kind: 'wow' });
      },
    ],
  ];

  it.each(writes)('a deadlock in %s fails the host transaction whole; a retry settles every parent', async (_name, write) => {
    const articles = ds().getRepository(LkArticle);
    const comments = ds().getRepository(LkComment);
    const [a, b] = await articles.save([{ title: 'a' }, { title: 'b' }]);
    const slug = `x-${suffix()}`;
    const [x] = await comments.save([
      { body: 'x', slug, articleId: a!.id },
      { body: 'a2', articleId: a!.id },
      { body: 'b1', articleId: b!.id },
    ]);
    const reaction = await ds()
      .getRepository(LkReaction)
      .save({ kind: 'like', article: { id: a!.id } as LkArticle });
    await expectSettled();
    const ids: Seeded = { x: x!.id, slug, b: b!.id, r: reaction.id };
    const target = write === writes[2]![1] ? `lk_reaction WHERE id = ${ids.r}` : `lk_comment WHERE id = ${ids.x}`;

    const t1Body = async (tx: EntityManager): Promise<void> => {
      await tx.update(LkArticle, ids.b, { title: 't1' });
      await write(tx, ids);
    };
    // T2 is the heavier one (InnoDB rolls back the lighter transaction of a deadlock) and, on
    // PostgreSQL, checks for deadlocks last (the first to check is rolled back): T1 is the victim.
    const t2Body = async (tx: EntityManager, locked?: () => void, go?: Promise<void>): Promise<void> => {
      if (pg) await tx.query(`SET LOCAL deadlock_timeout = '20s'`);
      await tx.query('UPDATE lk_ballast SET n = n + 1');
      await tx.query(`SELECT id FROM ${target} FOR UPDATE`);
      locked?.();
      await go;
      await tx.update(LkArticle, ids.b, { title: 't2' });
    };

    const locked = gate();
    const t1Waits = gate();
    let t1Session = 0;
    const t2 = ds().transaction((tx) => t2Body(tx, locked.open, t1Waits.wait));
    await locked.wait;
    const t1 = ds().transaction(async (tx) => {
      t1Session = await sessionOf(tx);
      await t1Body(tx);
    });
    const waited = waitFor(async () => t1Session > 0 && (await waitsForLock(t1Session)), 'T1 to wait for the row T2 holds');
    // T2 goes on even if T1 never waited, so that no transaction is left open.
    const [w, r1, r2] = await Promise.allSettled([waited.finally(t1Waits.open), t1, t2]);
    if (w.status === 'rejected') throw w.reason;

    // The host sees the deadlock, as it would without capture; nothing of T1 is committed.
    expect(r2.status).toBe('fulfilled');
    expect(r1.status).toBe('rejected');
    expect(driverCode((r1 as PromiseRejectedResult).reason)).toBe(deadlock);
    expect((await articles.findOneByOrFail({ id: ids.b })).title).toBe('t2');
    expect((await comments.findOneByOrFail({ id: ids.x })).articleId).toBe(a!.id);
    expect((await ds().getRepository(LkReaction).findOneByOrFail({ id: ids.r })).kind).toBe('like');

    await ds().transaction(t1Body);
    expect((await articles.findOneByOrFail({ id: ids.b })).title).toBe('t1');
    await expectSettled();
  });
});

// A SELECT the database refuses for a reason of its own (here: a column the role may not read)
// must not abort the host's PostgreSQL transaction: the lookup runs in a savepoint, rolled back.
// (A failed statement leaves a MySQL transaction as it was.)
describe('a lookup refused inside a PostgreSQL transaction', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  const log = recordingLogger();
  const role = `cap_locks_${suffix()}`;
  beforeAll(async () => {
    db = await createTestDb('cap_locks_refused', { entities: ENTITIES });
    coalescer = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: `lk-${suffix()}`, logger: log.logger });
    coalescer.parent<number>(LkArticle, { aggregates: { commentCount: count(LkComment) } });
    coalescer.child(LkComment, { parent: LkArticle, foreignKey: 'articleId' });
    coalescer.child(LkReaction, { parent: LkArticle, foreignKey: 'article' });
    await coalescer.attach();
    // May insert a reaction and read its id and kind, but not read its article: TypeORM's
    // INSERT ... RETURNING works, the lookup of the new row's article cannot.
    const q = (sql: string) => db.dataSource.query(sql);
    await q(`CREATE ROLE ${role}`);
    await q(`GRANT USAGE ON SCHEMA "${db.schema}" TO ${role}`);
    await q(`GRANT SELECT (id, kind), INSERT (kind, article_id) ON "${db.schema}".lk_reaction TO ${role}`);
    await q(`GRANT USAGE ON SEQUENCE "${db.schema}".lk_reaction_id_seq TO ${role}`);
  });
  afterAll(async () => {
    await dispose(coalescer);
    await db.destroy();
    const admin = new DataSource({ type: 'postgres', url: databaseUrl() });
    await admin.initialize();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.destroy();
  });

  it('warns and lets the host transaction commit everything it wrote', async () => {
    const ds = db.dataSource;
    const article = await ds.getRepository(LkArticle).save({ title: 'a' });
    await coalescer.drain();
    await ds.transaction(async (tx) => {
      await tx.update(LkArticle, article.id, { title: 'before' });
      await tx.query(`SET LOCAL ROLE ${role}`);
      // The insert event does not name the new row's article: it is read by id after the INSERT.
      await tx.createQueryBuilder().insert().into(LkReaction).values({ kind: 'shy' }).execute();
      await tx.query('RESET ROLE');
      await tx.save(tx.create(LkComment, { body: 'after', articleId: article.id }));
    });
    expect((await ds.getRepository(LkArticle).findOneByOrFail({ id: article.id })).title).toBe('before');
    expect(await ds.getRepository(LkReaction).countBy({ kind: 'shy' })).toBe(1);
    expect(await ds.getRepository(LkComment).countBy({ body: 'after' })).toBe(1);
    const refused = log.lines.filter((l) => l.level === 40 && l.child === 'LkReaction');
    expect(refused).toHaveLength(1);
    expect(refused[0]?.msg).toMatch(/the lookup of its foreign keys failed: .*permission denied/);
  });
});
