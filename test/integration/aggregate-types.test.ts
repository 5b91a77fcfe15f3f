import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Column, CreateDateColumn, Entity, In, JoinColumn, ManyToOne, PrimaryGeneratedColumn, type DataSource } from 'typeorm';
import { avg, Coalescer, max, RegistrationError, sum, type AggregateSpec, type ParentId } from '../../src';
import { createTestDb, DIALECTS, disposeAll, redisUrl, suffix, testLogger, type TestDb } from '../support';

// A post's last comment time, from the comments' CreateDateColumn: datetime(6) on MariaDB,
// timestamp (6 digits of seconds by default) on PostgreSQL.
@Entity({ name: 'aty_post' })
class AtPost {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  /** timestamp(0) on MariaDB, timestamp(6) on PostgreSQL. */
  @Column({ name: 'last_comment_at', type: 'timestamp', nullable: true }) lastCommentAt!: Date | null;
  /** timestamp(0) on both. */
  @Column({ name: 'last_comment_secs', type: 'timestamp', precision: 0, nullable: true }) lastCommentSecs!: Date | null;
  /** datetime(6) on MariaDB, timestamp(6) on PostgreSQL. */
  @Column({ name: 'last_comment_exact', type: Date, precision: 6, nullable: true }) lastCommentExact!: Date | null;
}

@Entity({ name: 'aty_comment' })
class AtComment {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'post_id', type: 'int' }) postId!: number;
  @ManyToOne(() => AtPost, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'post_id' })
  post?: AtPost;
  @Column({ type: 'varchar', length: 200 }) body!: string;
  @CreateDateColumn({ name: 'created_at' }) createdAt!: Date;
}

@Entity({ name: 'aty_order' })
class AtOrder {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'decimal', precision: 14, scale: 2, default: 0 }) total!: string;
  @Column({ name: 'total_whole', type: 'int', default: 0 }) totalWhole!: number;
  @Column({ name: 'avg_price', type: 'decimal', precision: 10, scale: 2, nullable: true }) avgPrice!: string | null;
  /** decimal(10,0): a precision without a scale. */
  @Column({ name: 'avg_whole', type: 'decimal', precision: 10, nullable: true }) avgWhole!: string | null;
}

@Entity({ name: 'aty_order_line' })
class AtLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'order_id', type: 'int' }) orderId!: number;
  @ManyToOne(() => AtOrder, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'order_id' })
  order?: AtOrder;
  @Column({ type: 'varchar', length: 120 }) sku!: string;
  @Column({ type: 'int' }) qty!: number;
  @Column({ name: 'unit_price', type: 'decimal', precision: 12, scale: 2 }) unitPrice!: string;
  @CreateDateColumn({ name: 'created_at' }) createdAt!: Date;
}

describe.each(DIALECTS)('aggregates and column types on %s', (dialect) => {
  let db: TestDb;
  const open: Coalescer[] = [];
  beforeAll(async () => {
    db = await createTestDb(`agg_coltypes_${dialect}`, {
      dialect,
      entities: [AtPost, AtComment, AtOrder, AtLine],
      synchronize: true,
    });
  });
  afterAll(async () => {
    await disposeAll(open);
    await db.destroy();
  });
  const make = (): Coalescer => {
    const c = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: `aty-${suffix()}`, logger: testLogger() });
    open.push(c);
    return c;
  };
  const pg = dialect === 'postgres';
  const createdAt = pg ? 'timestamp\\(6\\)' : 'datetime\\(6\\)';
  const decimal = pg ? 'numeric' : 'decimal';
  const refused = (target: Function, aggregates: Record<string, AggregateSpec>, message: RegExp): void => {
    const register = () => make().parent(target, { aggregates });
    expect(register).toThrow(RegistrationError);
    expect(register).toThrow(message);
  };

  it('max() of a datetime(6) into a column with fewer digits of seconds is refused, naming both columns and the precision to declare', () => {
    refused(
      AtPost,
      { lastCommentSecs: max(AtComment, 'createdAt') },
      new RegExp(
        `^aggregate "lastCommentSecs" of AtPost: max\\(AtComment, 'createdAt'\\) into AtPost\\.lastCommentSecs \\(column last_comment_secs, timestamp\\(0\\)\\): ` +
          `AtComment\\.createdAt is ${createdAt}, whose fractional seconds the column would cut; declare AtPost\\.lastCommentSecs with precision: 6$`,
      ),
    );
    // A plain timestamp is timestamp(0) on MariaDB (refused) and timestamp(6) on PostgreSQL (fine).
    const plain = { lastCommentAt: max(AtComment, 'createdAt') };
    if (pg) expect(() => make().parent(AtPost, { aggregates: plain })).not.toThrow();
    else
      refused(
        AtPost,
        plain,
        /into AtPost\.lastCommentAt \(column last_comment_at, timestamp\(0\)\): .*declare AtPost\.lastCommentAt with precision: 6$/,
      );
  });

  it('sum() and avg() of a string or a date-time, and a sum of decimal(12,2) into an int column, are refused', () => {
    const target = `AtOrder\\.total \\(${decimal}\\(14,2\\)\\)`;
    refused(
      AtOrder,
      { total: sum(AtLine, 'sku') },
      new RegExp(
        `^aggregate "total" of AtOrder: sum\\(AtLine, 'sku'\\) into ${target}: sum\\(\\) needs a numeric expression; AtLine\\.sku is varchar\\(120\\)$`,
      ),
    );
    refused(
      AtOrder,
      { avgPrice: avg(AtLine, 'sku') },
      /avg\(AtLine, 'sku'\) into AtOrder\.avgPrice .*: avg\(\) needs a numeric expression; AtLine\.sku is varchar\(120\)$/,
    );
    refused(
      AtOrder,
      { total: sum(AtLine, 'createdAt') },
      new RegExp(`into ${target}: sum\\(\\) needs a numeric expression; AtLine\\.createdAt is ${createdAt}$`),
    );
    refused(
      AtOrder,
      { avgPrice: avg(AtLine, 'createdAt') },
      new RegExp(`avg\\(\\) needs a numeric expression; AtLine\\.createdAt is ${createdAt}$`),
    );
    refused(
      AtOrder,
      { total: sum(AtLine, 'qty * sku') },
      /"\*" needs numeric operands; AtLine\.sku is varchar\(120\) at position 7$/,
    );
    refused(
      AtOrder,
      { totalWhole: sum(AtLine, 'unitPrice') },
      new RegExp(
        `^aggregate "totalWhole" of AtOrder: sum\\(AtLine, 'unitPrice'\\) into AtOrder\\.totalWhole \\(column total_whole, int(eger)?\\): ` +
          `AtLine\\.unitPrice is ${decimal}\\(12,2\\), which the column would round; declare AtOrder\\.totalWhole as decimal with scale >= 2$`,
      ),
    );
    refused(
      AtOrder,
      { totalWhole: avg(AtLine, 'qty') },
      /avg\(\) is a fractional decimal, which an integer column would round; declare AtOrder\.totalWhole as decimal \(rounded at its scale\) or float$/,
    );
    // Nothing was half registered: the same coalescer takes a good declaration.
    const c = make();
    expect(() => c.parent(AtOrder, { aggregates: { total: sum(AtLine, 'sku') } })).toThrow(RegistrationError);
    expect(() => c.parent(AtOrder, { aggregates: { total: sum(AtLine, 'qty * unitPrice') } })).not.toThrow();
  });

  it('an average rounded at the column scale drains, and verify finds no drift, twice', async () => {
    const c = make().parent(AtOrder, {
      aggregates: {
        total: sum(AtLine, 'qty * unitPrice'),
        avgPrice: avg(AtLine, 'unitPrice'),
        avgWhole: avg(AtLine, 'unitPrice'),
      },
    });
    const orders = await db.dataSource.getRepository(AtOrder).save([{}, {}, {}, {}]);
    const prices = [['1.00', '1.00', '2.00'], ['0.10', '0.20', '0.20'], ['9.99'], []];
    await db.dataSource
      .getRepository(AtLine)
      .save(
        orders.flatMap((o, i) =>
          (prices[i] ?? []).map((unitPrice, j) => ({ orderId: o.id, sku: `s${j}`, qty: j + 1, unitPrice })),
        ),
      );
    const ids = orders.map((o) => o.id);
    await c.mark(AtOrder, ids);
    expect(await c.drain()).toMatchObject({ recomputed: 4, failed: 0 });
    const stored = await db.dataSource.getRepository(AtOrder).find({ where: { id: In(ids) }, order: { id: 'ASC' } });
    expect(stored.map((o) => [o.total, o.avgPrice, o.avgWhole])).toEqual([
      ['9.00', '1.33', '1'],
      ['1.10', '0.17', '0'],
      ['9.99', '9.99', '10'],
      ['0.00', null, null],
    ]);
    for (let round = 0; round < 2; round += 1) {
      expect(await c.verify(AtOrder, { ids, recheckMs: 0 }), `verify ${round + 1}`).toMatchObject({
        checked: 4,
        drifted: 0,
        skipped: 0,
        examples: [],
      });
    }
  });

  it('max() of datetime(6) into a datetime(6) column keeps the microseconds, and verify finds no drift, twice', async () => {
    const aggregates: Record<string, AggregateSpec> = { lastCommentExact: max(AtComment, 'createdAt') };
    if (pg) aggregates.lastCommentAt = max(AtComment, 'createdAt');
    const c = make().parent(AtPost, { aggregates });
    const posts = await db.dataSource.getRepository(AtPost).save([{}, {}, {}]);
    // created_at from the database's clock: microseconds a JS Date does not have.
    for (const [i, post] of posts.entries()) {
      for (let j = 0; j <= i; j += 1) await db.dataSource.getRepository(AtComment).insert({ postId: post.id, body: `c${j}` });
    }
    await db.dataSource.getRepository(AtComment).insert({ postId: posts[2]!.id, body: 'gone' });
    await db.dataSource.getRepository(AtComment).delete({ body: 'gone' });
    const ids = posts.map((p) => p.id);
    await c.mark(AtPost, ids);
    expect(await c.drain()).toMatchObject({ recomputed: 3, failed: 0 });
    expect(await microsDiffer(db.dataSource, ids)).toEqual([]);
    for (let round = 0; round < 2; round += 1) {
      expect(await c.verify(AtPost, { ids, recheckMs: 0 }), `verify ${round + 1}`).toMatchObject({
        checked: 3,
        drifted: 0,
        skipped: 0,
      });
    }
  });

  it("a host recompute into a timestamp(0) column verifies against expected() Dates at the column's precision", async () => {
    const table = db.dataSource.getMetadata(AtPost).tablePath;
    const comments = db.dataSource.getMetadata(AtComment).tablePath;
    const p = (n: number): string => (pg ? `$${n}` : '?');
    const c = make().parent<number>(AtPost, {
      recompute: async (id, { manager }) => {
        await manager.query(
          `UPDATE ${table} SET last_comment_secs = (SELECT max(created_at) FROM ${comments} WHERE post_id = ${p(1)}) WHERE id = ${p(2)}`,
          [id, id],
        );
      },
      // What the host says it should be: the newest comment's Date, milliseconds included.
      expected: async (ids: ParentId[], manager) => {
        const rows = await manager.getRepository(AtComment).find({ where: { postId: In(ids as number[]) } });
        return new Map(
          ids.map((id) => {
            const times = rows.filter((r) => r.postId === id).map((r) => r.createdAt.getTime());
            return [id, { lastCommentSecs: times.length ? new Date(Math.max(...times)) : null }];
          }),
        );
      },
    });
    const posts = await db.dataSource.getRepository(AtPost).save([{}, {}]);
    // Half past, and less than half past, a second: rounded and cut alike.
    await db.dataSource.getRepository(AtComment).insert([
      { postId: posts[0]!.id, body: 'a', createdAt: new Date(Date.UTC(2024, 5, 1, 12, 0, 1, 750)) },
      { postId: posts[1]!.id, body: 'b', createdAt: new Date(Date.UTC(2024, 5, 1, 12, 0, 1, 250)) },
    ]);
    const ids = posts.map((post) => post.id);
    await c.mark(AtPost, ids);
    expect(await c.drain()).toMatchObject({ recomputed: 2, failed: 0 });
    for (const post of await db.dataSource.getRepository(AtPost).findBy({ id: In(ids) })) {
      expect(post.lastCommentSecs?.getMilliseconds()).toBe(0);
    }
    for (let round = 0; round < 2; round += 1) {
      expect(await c.verify(AtPost, { ids, recheckMs: 0 }), `verify ${round + 1}`).toMatchObject({ checked: 2, drifted: 0 });
    }
    // A real difference is still drift (one unit up could be a rounding of .750: not drift, as documented).
    await db.dataSource.query(
      `UPDATE ${table} SET last_comment_secs = ${pg ? "last_comment_secs + interval '2 seconds'" : 'last_comment_secs + INTERVAL 2 SECOND'}`,
    );
    expect(await c.verify(AtPost, { ids, recheckMs: 0 })).toMatchObject({ checked: 2, drifted: 2 });
  });
});

/** Posts whose stored last_comment_exact is not, to the microsecond, their newest comment's created_at. */
async function microsDiffer(ds: DataSource, ids: number[]): Promise<unknown[]> {
  const posts = ds.getMetadata(AtPost).tablePath;
  const comments = ds.getMetadata(AtComment).tablePath;
  const pg = ds.options.type === 'postgres';
  const list = ids.map((_id, i) => (pg ? `$${i + 1}` : '?')).join(', ');
  const newest = `(SELECT max(c.created_at) FROM ${comments} c WHERE c.post_id = p.id)`;
  const differs = pg ? `p.last_comment_exact IS DISTINCT FROM ${newest}` : `NOT (p.last_comment_exact <=> ${newest})`;
  return ds.query(`SELECT p.id FROM ${posts} p WHERE p.id IN (${list}) AND ${differs}`, ids);
}
