import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Column,
  DeleteDateColumn,
  Entity,
  JoinTable,
  ManyToMany,
  ManyToOne,
  MoreThan,
  PrimaryGeneratedColumn,
  type DataSource,
} from 'typeorm';
import { avg, Coalescer, count, max, min, RegistrationError, sum } from '../../src';
import { createTestDb, DIALECTS, dispose, redisUrl, suffix, testLogger, typeormVersion, type TestDb } from '../support';

const typeorm03 = typeormVersion().startsWith('0.3.');

// Aggregates through many-to-many relations: posts and tags (the join table owned by the post;
// each side a parent of the other), playlists and songs (the join table owned by the song, the
// far entity). Far rows soft-deleted are left out.

@Entity({ name: 'm2_post' })
class MPost {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 40, default: '' }) title!: string;
  @Column({ name: 'tag_count', type: 'int', default: 0 }) tagCount!: number;
  @Column({ name: 'heavy_tags', type: 'int', default: 0 }) heavyTags!: number;
  @Column({ name: 'tag_weight', type: 'int', default: 0 }) tagWeight!: number;
  @ManyToMany(() => MTag, (t) => t.posts)
  @JoinTable({ name: 'm2_post_tag', joinColumn: { name: 'post_id' }, inverseJoinColumn: { name: 'tag_id' } })
  tags?: MTag[];
}

@Entity({ name: 'm2_tag' })
class MTag {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'int', default: 1 }) weight!: number;
  @Column({ name: 'post_count', type: 'int', default: 0 }) postCount!: number;
  @DeleteDateColumn({ name: 'deleted_at', nullable: true }) deletedAt!: Date | null;
  @ManyToMany(() => MPost, (p) => p.tags) posts?: MPost[];
}

@Entity({ name: 'm2_playlist' })
class Playlist {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'song_count', type: 'int', default: 0 }) songCount!: number;
  @Column({ name: 'total_sec', type: 'int', default: 0 }) totalSec!: number;
  @Column({ name: 'longest_sec', type: 'int', nullable: true }) longestSec!: number | null;
  @Column({ name: 'first_title', type: 'varchar', length: 40, nullable: true }) firstTitle!: string | null;
  @Column({ name: 'avg_sec', type: 'decimal', precision: 10, scale: 2, nullable: true }) avgSec!: string | null;
  @ManyToMany(() => Song, (s) => s.playlists) songs?: Song[];
}

@Entity({ name: 'm2_song' })
class Song {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 40 }) title!: string;
  @Column({ name: 'duration_sec', type: 'int' }) durationSec!: number;
  @DeleteDateColumn({ name: 'deleted_at', nullable: true }) deletedAt!: Date | null;
  @ManyToMany(() => Playlist, (p) => p.songs)
  @JoinTable({ name: 'm2_playlist_song', joinColumn: { name: 'song_id' }, inverseJoinColumn: { name: 'playlist_id' } })
  playlists?: Playlist[];
}

// Registration only: a child with a many-to-one and a many-to-many relation to the same parent.
@Entity({ name: 'm2_note' })
class Note {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @ManyToOne(() => MPost) post?: MPost;
}

function register(c: Coalescer): Coalescer {
  return c
    .parent(MPost, {
      aggregates: {
        // The relation on the parent, which owns the join table.
        tagCount: count(() => MTag, { via: 'tags' }),
        heavyTags: count(() => MTag, { via: 'tags', where: { weight: MoreThan(5) } }),
        tagWeight: sum(() => MTag, 'weight * 2', { via: 'tags' }),
      },
    })
    .parent(MTag, {
      // The relation named on the child (MPost.tags).
      aggregates: { postCount: count(MPost, { via: 'tags' }) },
    })
    .parent(Playlist, {
      // The relation on the parent; the far entity owns the join table.
      aggregates: {
        songCount: count(() => Song, { via: 'songs' }),
        totalSec: sum(() => Song, 'durationSec', { via: 'songs' }),
        longestSec: max(() => Song, 'durationSec', { via: 'songs' }),
        firstTitle: min(() => Song, 'title', { via: 'songs' }),
        avgSec: avg(() => Song, 'durationSec', { via: 'songs' }),
      },
    });
}

/** What every parent should hold, read by SQL written here, apart from the library's. */
async function truth(ds: DataSource): Promise<{ posts: unknown[]; tags: unknown[]; playlists: unknown[] }> {
  const posts = (await ds.query(
    `SELECT p.id,
       (SELECT COUNT(*) FROM m2_post_tag j JOIN m2_tag t ON t.id = j.tag_id WHERE j.post_id = p.id AND t.deleted_at IS NULL) AS n,
       (SELECT COUNT(*) FROM m2_post_tag j JOIN m2_tag t ON t.id = j.tag_id WHERE j.post_id = p.id AND t.deleted_at IS NULL AND t.weight > 5) AS heavy,
       (SELECT COALESCE(SUM(t.weight * 2), 0) FROM m2_post_tag j JOIN m2_tag t ON t.id = j.tag_id WHERE j.post_id = p.id AND t.deleted_at IS NULL) AS w
     FROM m2_post p ORDER BY p.id`,
  )) as { id: number; n: string; heavy: string; w: string }[];
  const tags = (await ds.query(
    `SELECT t.id, (SELECT COUNT(*) FROM m2_post_tag j WHERE j.tag_id = t.id) AS n FROM m2_tag t ORDER BY t.id`,
  )) as { id: number; n: string }[];
  const live = 'FROM m2_playlist_song j JOIN m2_song s ON s.id = j.song_id WHERE j.playlist_id = p.id AND s.deleted_at IS NULL';
  const playlists = (await ds.query(
    `SELECT p.id, (SELECT COUNT(*) ${live}) AS n, (SELECT SUM(s.duration_sec) ${live}) AS total,
       (SELECT MAX(s.duration_sec) ${live}) AS longest, (SELECT MIN(s.title) ${live}) AS first,
       (SELECT AVG(s.duration_sec) ${live}) AS mean
     FROM m2_playlist p ORDER BY p.id`,
  )) as { id: number; n: string; total: string | null; longest: string | null; first: string | null; mean: string | null }[];
  return {
    posts: posts.map((r) => ({ id: Number(r.id), tagCount: Number(r.n), heavyTags: Number(r.heavy), tagWeight: Number(r.w) })),
    tags: tags.map((r) => ({ id: Number(r.id), postCount: Number(r.n) })),
    playlists: playlists.map((r) => ({
      id: Number(r.id),
      songCount: Number(r.n),
      totalSec: Number(r.total ?? 0),
      longestSec: r.longest === null ? null : Number(r.longest),
      firstTitle: r.first,
      // Rounded at the column's scale, as the column stores it.
      avgSec: r.mean === null ? null : Number(r.mean).toFixed(2),
    })),
  };
}

async function stored(ds: DataSource): Promise<{ posts: unknown[]; tags: unknown[]; playlists: unknown[] }> {
  const posts = await ds.getRepository(MPost).find({ order: { id: 'ASC' } });
  const tags = await ds.getRepository(MTag).find({ order: { id: 'ASC' }, withDeleted: true });
  const playlists = await ds.getRepository(Playlist).find({ order: { id: 'ASC' } });
  return {
    posts: posts.map(({ id, tagCount, heavyTags, tagWeight }) => ({ id, tagCount, heavyTags, tagWeight })),
    tags: tags.map(({ id, postCount }) => ({ id, postCount })),
    playlists: playlists.map(({ id, songCount, totalSec, longestSec, firstTitle, avgSec }) => ({
      id,
      songCount,
      totalSec,
      longestSec,
      firstTitle,
      avgSec: avgSec === null ? null : Number(avgSec).toFixed(2),
    })),
  };
}

/** One random change of links or far rows, or a drain. */
type Step =
  | { kind: 'saveTags'; post: number; tags: number[] }
  | { kind: 'addTag' | 'removeTag'; post: number; tag: number }
  | { kind: 'saveSongPlaylists'; song: number; playlists: number[] }
  | { kind: 'addSong' | 'removeSong'; playlist: number; song: number }
  | { kind: 'swapSongs'; playlist: number; add: number; remove: number }
  | { kind: 'weight'; tag: number; weight: number; byCriteria: boolean }
  | { kind: 'duration'; song: number; seconds: number; title: number }
  | { kind: 'softDelete' | 'recover' | 'delete'; far: 'tag' | 'song'; at: number }
  | { kind: 'newSong'; playlists: number[]; seconds: number }
  | { kind: 'renamePost'; post: number }
  | { kind: 'drain' };

const n = fc.nat({ max: 50 });
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('saveTags' as const), post: n, tags: fc.array(n, { maxLength: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('addTag' as const, 'removeTag' as const), post: n, tag: n }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('saveSongPlaylists' as const), song: n, playlists: fc.array(n, { maxLength: 3 }) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('addSong' as const, 'removeSong' as const), playlist: n, song: n }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('swapSongs' as const), playlist: n, add: n, remove: n }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('weight' as const),
      tag: n,
      weight: fc.integer({ min: 0, max: 9 }),
      byCriteria: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('duration' as const),
      song: n,
      seconds: fc.integer({ min: 1, max: 600 }),
      title: n,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('softDelete' as const, 'recover' as const, 'delete' as const),
      far: fc.constantFrom('tag' as const, 'song' as const),
      at: n,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('newSong' as const),
      playlists: fc.array(n, { maxLength: 3 }),
      seconds: fc.integer({ min: 1, max: 600 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('renamePost' as const), post: n }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drain' as const) }) },
);

describe.each(DIALECTS)('aggregates through many-to-many relations (%s)', (dialect) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(`m2m_${dialect}`, { dialect, entities: [MPost, MTag, Playlist, Song, Note], synchronize: true });
  });
  afterAll(async () => {
    await db.destroy();
  });
  const make = (): Coalescer =>
    new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: `m2m-${suffix()}`, logger: testLogger() });

  it('any history of links added and removed (save, RelationQueryBuilder), far rows changed, deleted and soft-deleted converges to SQL truth', async () => {
    const ds = db.dataSource;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 10, maxLength: 40 }), async (steps) => {
        for (const table of ['m2_post_tag', 'm2_playlist_song', 'm2_post', 'm2_tag', 'm2_playlist', 'm2_song']) {
          await ds.query(`DELETE FROM ${table}`);
        }
        const c = register(make());
        await c.attach();
        try {
          const posts = await ds.getRepository(MPost).save([{ title: 'a' }, { title: 'b' }, { title: 'c' }]);
          const tags = await ds.getRepository(MTag).save([{ weight: 2 }, { weight: 7 }, { weight: 9 }, { weight: 4 }]);
          const playlists = await ds.getRepository(Playlist).save([{}, {}, {}]);
          const songs = await ds
            .getRepository(Song)
            .save([120, 240, 33, 400].map((durationSec, i) => ({ title: `s${i}`, durationSec, playlists: [playlists[i % 3]!] })));
          const pick = <T>(list: readonly T[], i: number): T | undefined =>
            list.length === 0 ? undefined : list[i % list.length];
          const exists = async (type: typeof Song | typeof MTag, id: number): Promise<boolean> =>
            (await ds.getRepository<{ id: number }>(type).count({ where: { id }, withDeleted: true })) > 0;
          const linked = async (table: string, a: string, b: string, x: number, y: number): Promise<boolean> =>
            ((await ds.query(`SELECT 1 AS one FROM ${table} WHERE ${a} = ${x} AND ${b} = ${y}`)) as unknown[]).length > 0;
          const withoutHiddenLinks = async (postId: number, ids: number[]): Promise<number[]> => {
            const kept: number[] = [];
            for (const id of ids) {
              const hidden =
                (await ds.getRepository(MTag).count({ where: { id }, withDeleted: true })) > 0 &&
                (await ds.getRepository(MTag).count({ where: { id } })) === 0;
              if (!(hidden && (await linked('m2_post_tag', 'post_id', 'tag_id', postId, id)))) kept.push(id);
            }
            return kept;
          };
          for (const s of steps) {
            switch (s.kind) {
              case 'saveTags': {
                const post = await ds
                  .getRepository(MPost)
                  .findOneOrFail({ where: { id: pick(posts, s.post)!.id }, relations: { tags: true } });
                let ids = [...new Set(s.tags.map((i) => pick(tags, i)!.id))];
                // TypeORM 0.3 does not see a link to a soft-deleted tag when it saves, and inserts it
                // again (a duplicate key, with or without this library: docs/operations/known-issues.md).
                if (typeorm03) ids = await withoutHiddenLinks(post.id, ids);
                post.tags = ids.map((id) => ({ id }) as MTag);
                await ds.getRepository(MPost).save(post);
                break;
              }
              case 'addTag':
              case 'removeTag': {
                const post = pick(posts, s.post)!;
                const tag = pick(tags, s.tag)!;
                const has = await linked('m2_post_tag', 'post_id', 'tag_id', post.id, tag.id);
                const rel = ds.createQueryBuilder().relation(MPost, 'tags').of(post);
                if (s.kind === 'addTag' && !has) await rel.add(tag.id);
                if (s.kind === 'removeTag' && has) await rel.remove(tag.id);
                break;
              }
              case 'saveSongPlaylists': {
                const song = pick(songs, s.song)!;
                const row = await ds
                  .getRepository(Song)
                  .findOne({ where: { id: song.id }, relations: { playlists: true }, withDeleted: true });
                if (!row) break;
                row.playlists = [...new Set(s.playlists.map((i) => pick(playlists, i)!.id))].map((id) => ({ id }) as Playlist);
                await ds.getRepository(Song).save(row);
                break;
              }
              case 'addSong':
              case 'removeSong': {
                const playlist = pick(playlists, s.playlist)!;
                const song = pick(songs, s.song)!;
                if (!(await exists(Song, song.id))) break;
                const has = await linked('m2_playlist_song', 'playlist_id', 'song_id', playlist.id, song.id);
                // From the inverse side: the playlist does not own the join table.
                const rel = ds.createQueryBuilder().relation(Playlist, 'songs').of(playlist.id);
                if (s.kind === 'addSong' && !has) await rel.add(song);
                if (s.kind === 'removeSong' && has) await rel.remove(song);
                break;
              }
              case 'swapSongs': {
                const playlist = pick(playlists, s.playlist)!;
                const [add, remove] = [pick(songs, s.add)!, pick(songs, s.remove)!];
                if (add.id === remove.id || !(await exists(Song, add.id)) || !(await exists(Song, remove.id))) break;
                const hasAdd = await linked('m2_playlist_song', 'playlist_id', 'song_id', playlist.id, add.id);
                const hasRemove = await linked('m2_playlist_song', 'playlist_id', 'song_id', playlist.id, remove.id);
                if (!hasAdd && hasRemove) {
                  await ds.createQueryBuilder().relation(Playlist, 'songs').of(playlist).addAndRemove(add.id, remove.id);
                } else {
                  // From the owning side.
                  if (!hasAdd) await ds.createQueryBuilder().relation(Song, 'playlists').of(add.id).add(playlist.id);
                  if (hasRemove) await ds.createQueryBuilder().relation(Song, 'playlists').of(remove).remove(playlist);
                }
                break;
              }
              case 'weight': {
                const tag = pick(tags, s.tag)!;
                if (s.byCriteria) await ds.getRepository(MTag).update({ id: tag.id }, { weight: s.weight });
                else if (await exists(MTag, tag.id)) await ds.getRepository(MTag).save({ id: tag.id, weight: s.weight });
                break;
              }
              case 'duration': {
                const song = pick(songs, s.song)!;
                if (await exists(Song, song.id))
                  await ds.getRepository(Song).save({ id: song.id, durationSec: s.seconds, title: `t${s.title}` });
                break;
              }
              case 'softDelete':
              case 'recover':
              case 'delete': {
                const repo = ds.getRepository<{ id: number }>(s.far === 'tag' ? MTag : Song);
                const list: { id: number }[] = s.far === 'tag' ? tags : songs;
                const target = pick(list, s.at);
                if (!target) break;
                const row = await repo.findOne({ where: { id: target.id }, withDeleted: true });
                if (!row) break;
                if (s.kind === 'softDelete') await repo.softRemove(row);
                else if (s.kind === 'recover') await repo.recover(row);
                else {
                  // Far rows go for good only while more than two are left, so the history keeps something to link.
                  if (list.length <= 2) break;
                  await repo.remove(row);
                  list.splice(list.indexOf(target), 1);
                }
                break;
              }
              case 'newSong': {
                const links = [...new Set(s.playlists.map((i) => pick(playlists, i)!.id))].map((id) => ({ id }) as Playlist);
                songs.push(
                  await ds.getRepository(Song).save({ title: `n${s.seconds}`, durationSec: s.seconds, playlists: links }),
                );
                break;
              }
              case 'renamePost':
                // A post is the far entity of the tags' postCount: a change to it marks them, and changes nothing.
                await ds.getRepository(MPost).save({ id: pick(posts, s.post)!.id, title: `r${s.post}` });
                break;
              case 'drain':
                await c.drain();
                break;
            }
          }
          await c.drain();
          expect(await c.stats()).toMatchObject({ pending: 0, inflight: 0, dead: 0 });
          expect(await stored(ds)).toEqual(await truth(ds));
          for (const type of [MPost, MTag, Playlist]) {
            const r = await c.verify(type, { recheckMs: 0 });
            expect(r.drifted, `${type.name}: ${JSON.stringify(r.examples)}`).toBe(0);
          }
        } finally {
          await dispose(c);
        }
      }),
      { numRuns: 8 },
    );
  });

  it('one statement per batch through the join table; verify finds a drifted value', async () => {
    const c = register(make());
    try {
      const { sql } = c.registry.parentOf(Playlist).aggregates!.updateStatement([1, 2]);
      const q = (s: string): string => (dialect === 'postgres' ? `"${s}"` : `\`${s}\``);
      expect(sql.match(/GROUP BY/g)).toHaveLength(1);
      expect(sql).toContain(`${q('m2_playlist_song')} j JOIN `);
      expect(sql).toContain(`${q('m2_song')} c ON c.${q('id')} = j.${q('song_id')}`);
      expect(sql).toMatch(/deleted_at.{1,2} IS NULL/);
      const playlist = await db.dataSource.getRepository(Playlist).save({});
      await db.dataSource.getRepository(Song).save([
        { title: 'x', durationSec: 10, playlists: [playlist] },
        { title: 'y', durationSec: 20, playlists: [playlist] },
      ]);
      await c.mark(Playlist, playlist.id);
      await c.drain();
      expect(await db.dataSource.getRepository(Playlist).findOneByOrFail({ id: playlist.id })).toMatchObject({
        songCount: 2,
        totalSec: 30,
        longestSec: 20,
        firstTitle: 'x',
      });
      await db.dataSource.getRepository(Playlist).update(playlist.id, { totalSec: 31 });
      const r = await c.verify(Playlist, { ids: [playlist.id], recheckMs: 0 });
      expect(r).toMatchObject({ checked: 1, drifted: 1, examples: [{ id: playlist.id, field: 'totalSec', stored: 31 }] });
      expect(Number(r.examples[0]?.expected)).toBe(30);
    } finally {
      await dispose(c);
    }
  });

  it('a far row changed or soft-deleted marks every parent linked to it; a link added or removed marks both ends', async () => {
    const c = register(make());
    await c.attach();
    try {
      const ds = db.dataSource;
      const [a, b, other] = await ds.getRepository(Playlist).save([{}, {}, {}]);
      const song = await ds.getRepository(Song).save({ title: 'x', durationSec: 10, playlists: [a!, b!] });
      await c.drain();
      const hot = async (): Promise<string[]> => {
        await c.flushed();
        return (await c.hottest(20)).map((h) => h.member).sort();
      };
      expect(await hot()).toEqual([]);
      await ds.getRepository(Song).save({ id: song.id, durationSec: 11 });
      expect(await hot()).toEqual([`Playlist:${a!.id}`, `Playlist:${b!.id}`]);
      await c.drain();
      await ds.getRepository(Song).softRemove(song);
      expect(await hot()).toEqual([`Playlist:${a!.id}`, `Playlist:${b!.id}`]);
      await c.drain();
      expect(await ds.getRepository(Playlist).findOneByOrFail({ id: a!.id })).toMatchObject({ songCount: 0, totalSec: 0 });
      await ds.getRepository(Song).recover(song);
      await c.drain();
      await ds.createQueryBuilder().relation(Playlist, 'songs').of(other!).add(song.id);
      expect(await hot()).toEqual([`Playlist:${other!.id}`]);
      await c.drain();
      expect(await ds.getRepository(Playlist).findOneByOrFail({ id: other!.id })).toMatchObject({ songCount: 1, totalSec: 11 });
    } finally {
      c.detach();
      await dispose(c);
    }
  });

  it('registers the link each aggregate reads through, once; a later child() of the same link is accepted', async () => {
    const c = register(make());
    try {
      const links = (target: typeof MTag | typeof Song | typeof MPost) =>
        c.registry.linksOf(db.dataSource.getMetadata(target)).map((l) => `${l.kind}:${l.parent.name}`);
      expect(links(MTag)).toEqual(['junction:MPost']);
      expect(links(MPost)).toEqual(['junction:MTag']);
      expect(links(Song)).toEqual(['junction:Playlist']);
      expect(() => c.child(Song, { parent: Playlist, via: 'songs' })).not.toThrow();
      expect(links(Song)).toEqual(['junction:Playlist']);
    } finally {
      await dispose(c);
    }
  });

  it('registration errors point at via', async () => {
    const fails = async (aggregates: Parameters<Coalescer['parent']>[1]['aggregates'], message: RegExp): Promise<void> => {
      const c = make();
      try {
        expect(() => c.parent(MPost, { aggregates })).toThrow(RegistrationError);
        expect(() => c.parent(MPost, { aggregates })).toThrow(message);
        // Nothing half registered.
        expect(c.registry.parentNames()).toEqual([]);
      } finally {
        await c.close();
      }
    };
    await fails(
      { tagCount: count(() => MTag, { foreignKey: 'posts' }) },
      /aggregate "tagCount" of MPost: foreignKey "posts" is not a column or many-to-one relation of MTag \(columns: .*\); "posts" is a many-to-many relation: give \{ via: 'posts' \} instead of foreignKey/,
    );
    await fails(
      { tagCount: count(() => MTag) },
      /aggregate "tagCount" of MPost: MTag has no many-to-one relation to MPost; give foreignKey: .*, or via: 'tags' or 'posts' \(a many-to-many relation\)/,
    );
    await fails(
      { tagCount: count(() => MTag, { via: 'tagz' }) },
      /aggregate "tagCount" of MPost: via "tagz" is not a many-to-many relation between MPost and MTag \(many-to-many relations: MPost\.tags, MTag\.posts\)/,
    );
    await fails(
      { tagCount: count(() => Note, { via: 'post' }) },
      /via "post" is not a many-to-many relation between MPost and Note/,
    );
    await fails(
      { tagCount: count(() => MTag, { via: 'tags', foreignKey: 'id' }) },
      /give foreignKey \(one-to-many\) or via \(many-to-many\), not both/,
    );
    await fails(
      { tagWeight: sum(() => MTag, 'deletedAt', { via: 'tags' }) },
      /sum\(\) needs a numeric expression; MTag\.deletedAt is (timestamp|datetime)/,
    );
    await fails(
      { tagCount: count(() => Song, { via: 'tags' }) },
      /via "tags" is not a many-to-many relation between MPost and Song/,
    );
  });
});
