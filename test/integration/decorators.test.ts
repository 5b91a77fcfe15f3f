import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Column, Entity, JoinColumn, JoinTable, ManyToMany, ManyToOne, OneToMany, PrimaryGeneratedColumn } from 'typeorm';
import { Aggregate, Coalesced, Coalescer, count, max, RegistrationError, sum } from '../../src';
import { createTestDb, DIALECTS, dispose, redisUrl, suffix, testLogger, type TestDb } from '../support';

// A blog declared on its entities: a post counts its comments (and the approved ones), keeps its
// last comment's time and counts its tags (many-to-many); an author counts its posts and, through
// the chain Post -> Author, the comments on them. One call registers it all.

@Entity({ name: 'd_author' })
@Coalesced({ priority: 'high', batchSize: 50 })
class Author {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 40 }) name!: string;
  @Column({ name: 'post_count', type: 'int', default: 0 })
  @Aggregate(count(() => Post))
  postCount!: number;
  @Column({ name: 'comment_count', type: 'int', default: 0 })
  @Aggregate(sum(() => Post, 'commentCount'))
  commentCount!: number;
  @OneToMany(() => Post, (p) => p.author) posts?: Post[];
}

@Entity({ name: 'd_post' })
class Post {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 80 }) title!: string;
  // The relation alone, no explicit column: its join column is what the aggregates read.
  @ManyToOne(() => Author, (a) => a.posts, { nullable: true })
  @JoinColumn({ name: 'author_id' })
  author?: Author | null;
  @Column({ name: 'comment_count', type: 'int', default: 0 })
  @Aggregate(count(() => Comment))
  commentCount!: number;
  @Column({ name: 'approved_count', type: 'int', default: 0 })
  @Aggregate(count(() => Comment, { where: { approved: true } }))
  approvedCount!: number;
  @Column({ name: 'last_comment_at', type: 'timestamp', nullable: true })
  @Aggregate(max(() => Comment, 'createdAt'))
  lastCommentAt!: Date | null;
  @Column({ name: 'tag_count', type: 'int', default: 0 })
  @Aggregate(count(() => Tag, { via: 'tags' }))
  tagCount!: number;
  @ManyToMany(() => Tag, (t) => t.posts)
  @JoinTable({ name: 'd_post_tag' })
  tags?: Tag[];
  @OneToMany(() => Comment, (c) => c.post) comments?: Comment[];
}

@Entity({ name: 'd_comment' })
class Comment {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'post_id', type: 'int' }) postId!: number;
  @ManyToOne(() => Post, (p) => p.comments, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'post_id' })
  post?: Post;
  @Column({ type: 'varchar', length: 200 }) body!: string;
  @Column({ type: 'boolean', default: false }) approved!: boolean;
  @Column({ name: 'created_at', type: 'timestamp', nullable: true }) createdAt!: Date | null;
}

@Entity({ name: 'd_tag' })
class Tag {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 40 }) name!: string;
  @ManyToMany(() => Post, (p) => p.tags) posts?: Post[];
}

// Declarations whose child cannot be inferred: two relations to the parent, or none.
@Entity({ name: 'd_account' })
class Account {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'sent_count', type: 'int', default: 0 })
  @Aggregate(count(() => Transfer))
  sentCount!: number;
}
@Entity({ name: 'd_transfer' })
class Transfer {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @ManyToOne(() => Account) from?: Account;
  @ManyToOne(() => Account) to?: Account;
}
@Entity({ name: 'd_board' })
class Board {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'pin_count', type: 'int', default: 0 })
  @Aggregate(count(() => Pin))
  pinCount!: number;
}
@Entity({ name: 'd_pin' })
class Pin {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'board_ref', type: 'int' }) boardRef!: number;
}
// The same entities, the fix applied: foreignKey names the relation, or the column.
@Entity({ name: 'd_account2' })
class FixedAccount {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'sent_count', type: 'int', default: 0 })
  @Aggregate(count(() => FixedTransfer, { foreignKey: 'from' }))
  sentCount!: number;
  @Column({ name: 'received_count', type: 'int', default: 0 })
  @Aggregate(count(() => FixedTransfer, { foreignKey: 'to' }))
  receivedCount!: number;
}
@Entity({ name: 'd_transfer2' })
class FixedTransfer {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @ManyToOne(() => FixedAccount) from?: FixedAccount;
  @ManyToOne(() => FixedAccount) to?: FixedAccount;
}

const BLOG = [Author, Post, Comment, Tag];
const OTHERS = [Account, Transfer, Board, Pin, FixedAccount, FixedTransfer];

describe.each(DIALECTS)('aggregates declared on entities (%s)', (dialect) => {
  let db: TestDb;
  const open: Coalescer[] = [];
  beforeAll(async () => {
    db = await createTestDb(`decl_${dialect}`, { dialect, entities: [...BLOG, ...OTHERS], synchronize: true });
  });
  afterAll(async () => {
    for (const c of open) await dispose(c);
    await db.destroy();
  });
  const make = (): Coalescer => {
    const c = new Coalescer({
      dataSource: db.dataSource,
      redis: redisUrl(),
      namespace: `decl-${suffix()}`,
      logger: testLogger(),
    });
    open.push(c);
    return c;
  };
  const ds = () => db.dataSource;

  it('one call registers the parents, their children by the relations, the chain and the many-to-many link', () => {
    const c = make().entities([Post, Author]);
    const { registry } = c;
    expect(registry.parentNames().sort()).toEqual(['Author', 'Post']);
    const post = registry.parentOf(Post);
    expect(post.aggregates?.fields.map((f) => f.field)).toEqual(['commentCount', 'approvedCount', 'lastCommentAt', 'tagCount']);
    const author = registry.parentOf(Author);
    // @Coalesced's options; the others keep their defaults.
    expect(author).toMatchObject({ batchSize: 50, settleMs: 0 });
    expect(author.base).toBeGreaterThan(post.base);
    const links = (target: typeof Comment | typeof Post | typeof Tag) =>
      registry
        .linksOf(ds().getMetadata(target))
        .map((l) =>
          l.kind === 'foreignKey'
            ? `${l.parent.name} by ${l.column.databaseName}`
            : `${l.parent.name} via ${l.relation.propertyName}`,
        );
    expect(links(Comment)).toEqual(['Post by post_id']);
    expect(links(Post)).toEqual(['Author by author_id']);
    expect(links(Tag)).toEqual(['Post via tags']);
    expect(registry.chainLinksOf(post).map((l) => l.parent.name)).toEqual(['Author']);
    // A child() of a link the declarations made is the same link, not a duplicate.
    expect(() => c.child(Comment, { parent: Post, foreignKey: 'postId' })).not.toThrow();
    expect(links(Comment)).toEqual(['Post by post_id']);
  });

  it('saves through TypeORM make every declared field fresh, the chained author included', async () => {
    const c = make().entities([Post, Author]);
    await c.attach();
    const runner = c.runner({ schedule: '* * * * * *', concurrency: 2 });
    runner.start();
    try {
      const [ann, bob] = await ds()
        .getRepository(Author)
        .save([{ name: 'ann' }, { name: 'bob' }]);
      const [news, misc] = await ds()
        .getRepository(Tag)
        .save([{ name: 'news' }, { name: 'misc' }]);
      const first = await ds()
        .getRepository(Post)
        .save({ title: 'first', author: ann!, tags: [news!, misc!] });
      const second = await ds()
        .getRepository(Post)
        .save({ title: 'second', author: ann!, tags: [misc!] });
      const at = (s: number): Date => new Date(Date.UTC(2025, 0, 1, 12, 0, s));
      await ds()
        .getRepository(Comment)
        .save([
          { postId: first.id, body: 'a', approved: true, createdAt: at(1) },
          { postId: first.id, body: 'b', approved: false, createdAt: at(5) },
          { postId: second.id, body: 'c', approved: true, createdAt: at(3) },
        ]);
      // fresh() of the author waits for the posts below it in the chain.
      await c.fresh(Author, ann!.id, { timeoutMs: 20_000 });
      expect(await ds().getRepository(Author).findOneByOrFail({ id: ann!.id })).toMatchObject({ postCount: 2, commentCount: 3 });
      expect(await ds().getRepository(Post).findOneByOrFail({ id: first.id })).toMatchObject({
        commentCount: 2,
        approvedCount: 1,
        lastCommentAt: at(5),
        tagCount: 2,
      });

      // A comment removed, a tag unlinked, a post moved to another author.
      await ds().getRepository(Comment).delete({ body: 'b' });
      await ds().createQueryBuilder().relation(Post, 'tags').of(first).remove(news);
      await ds().getRepository(Post).save({ id: second.id, author: bob! });
      await c.fresh(Author, ann!.id, { timeoutMs: 20_000 });
      await c.fresh(Author, bob!.id, { timeoutMs: 20_000 });
      expect(await ds().getRepository(Post).findOneByOrFail({ id: first.id })).toMatchObject({
        commentCount: 1,
        approvedCount: 1,
        lastCommentAt: at(1),
        tagCount: 1,
      });
      expect(await ds().getRepository(Author).findOneByOrFail({ id: ann!.id })).toMatchObject({ postCount: 1, commentCount: 1 });
      expect(await ds().getRepository(Author).findOneByOrFail({ id: bob!.id })).toMatchObject({ postCount: 1, commentCount: 1 });
      for (const type of [Post, Author]) {
        expect((await c.verify(type, { recheckMs: 0 })).drifted).toBe(0);
      }
    } finally {
      await runner.stop();
      c.detach();
    }
  });

  it('refuses what it cannot infer, naming the choice and the fix, and registers nothing', () => {
    const c = make();
    expect(() => c.entities([Account])).toThrow(RegistrationError);
    expect(() => c.entities([Account])).toThrow(
      /aggregate "sentCount" of Account: Transfer has 2 many-to-one relations \(from, to\) to Account; give foreignKey: the Transfer property holding the Account id \(one of 'from', 'to'\)/,
    );
    expect(() => c.entities([Post, Author, Board])).toThrow(
      /aggregate "pinCount" of Board: Pin has no many-to-one relation to Board; give foreignKey: the Pin property holding the Board id/,
    );
    // Every entity of the DataSource: the blog and the ambiguous ones.
    expect(() => c.entities()).toThrow(/of Account: Transfer has 2 many-to-one relations/);
    expect(() => c.entities([Post, Comment])).toThrow(
      /entities\(\): Comment declares no @Aggregate property; list the entities whose columns are aggregates/,
    );
    // Whole or nothing: the blog listed beside a bad declaration was taken back.
    expect(c.registry.parentNames()).toEqual([]);
    expect(c.registry.childNames()).toEqual([]);
    // With the fix, the same shape registers.
    c.entities([FixedAccount]);
    expect(
      c.registry.linksOf(ds().getMetadata(FixedTransfer)).map((l) => (l.kind === 'foreignKey' ? l.column.databaseName : '')),
    ).toEqual(['fromId', 'toId']);
  });
});
