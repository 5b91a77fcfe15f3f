import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Coalescer, RegistrationError } from '../../src';
import { createTestDb, DIALECTS, redisUrl, testLogger } from '../support';
import {
  CAPTURE_ENTITIES,
  captureHarness,
  CpOrder,
  CpPost,
  CpRelLine,
  CpUser,
  m,
  type CaptureHarness,
} from '../support/capture-entities';

// Many-to-many: `child(CpPost, { parent: CpUser, via: 'favorites' })` and
// `child(CpUser, { parent: CpPost, via: 'fans' })`. Every link added or removed marks the user
// and the post of that link; a change of a post marks its fans, a change of a user its favourites.
describe.each(DIALECTS)('capture of many-to-many links (%s)', (dialect) => {
  let h: CaptureHarness;
  beforeAll(async () => {
    h = await captureHarness(`cap_links_${dialect}`, dialect);
  });
  afterAll(async () => {
    await h.close();
  });
  beforeEach(async () => {
    await h.reset();
  });

  const ds = () => h.db.dataSource;
  const users = () => ds().getRepository(CpUser);
  const posts = () => ds().getRepository(CpPost);
  const both = (userIds: number[], postIds: number[]): string[] =>
    [...m('CpUser', ...userIds), ...m('CpPost', ...postIds)].sort();
  async function seed(): Promise<{ u: CpUser; p1: CpPost; p2: CpPost; p3: CpPost }> {
    const [p1, p2, p3] = await posts().save([{ title: 'p1' }, { title: 'p2' }, { title: 'p3' }]);
    const u = await users().save({ name: 'u', favorites: [p1 as CpPost] });
    await h.reset();
    return { u, p1: p1 as CpPost, p2: p2 as CpPost, p3: p3 as CpPost };
  }

  it('a new entity saved with links marks both ends of each link', async () => {
    const [p1, p2] = await posts().save([{ title: 'a' }, { title: 'b' }]);
    // Inserting posts links nothing yet.
    expect(await h.heat()).toEqual({});
    const u = await users().save({ name: 'n', favorites: [p1 as CpPost, p2 as CpPost] });
    expect(await h.members()).toEqual(both([u.id], [p1?.id as number, p2?.id as number]));
  });

  it('links pushed into and dropped from the owning side mark both ends', async () => {
    const { u, p1, p2 } = await seed();
    const loaded = await users().findOneOrFail({ where: { id: u.id }, relations: { favorites: true } });
    loaded.favorites?.push(p2);
    await users().save(loaded);
    expect(await h.members()).toEqual(both([u.id], [p2.id]));
    await h.reset();
    loaded.favorites = loaded.favorites?.filter((p) => p.id !== p1.id);
    await users().save(loaded);
    expect(await h.members()).toEqual(both([u.id], [p1.id]));
  });

  it('links changed from the inverse side mark both ends', async () => {
    const { u, p3 } = await seed();
    const loaded = await posts().findOneOrFail({ where: { id: p3.id }, relations: { fans: true } });
    loaded.fans?.push(u);
    await posts().save(loaded);
    expect(await h.members()).toEqual(both([u.id], [p3.id]));
    await h.reset();
    loaded.fans = [];
    await posts().save(loaded);
    expect(await h.members()).toEqual(both([u.id], [p3.id]));
  });

  it('RelationQueryBuilder add / remove / set on the join table mark both ends', async () => {
    const { u, p1, p2, p3 } = await seed();
    await ds().createQueryBuilder().relation(CpUser, 'favorites').of(u).add([p2, p3]);
    expect(await h.members()).toEqual(both([u.id], [p2.id, p3.id]));
    await h.reset();
    await ds().createQueryBuilder().relation(CpUser, 'favorites').of(u).remove(p2);
    expect(await h.members()).toEqual(both([u.id], [p2.id]));
    await h.reset();
    await ds().createQueryBuilder().relation(CpPost, 'fans').of(p1).remove(u.id);
    expect(await h.members()).toEqual(both([u.id], [p1.id]));
    await h.reset();
    await ds().createQueryBuilder().relation(CpUser, 'favorites').of(u).addAndRemove([p1], [p3]);
    expect(await h.members()).toEqual(both([u.id], [p1.id, p3.id]));
  });

  it('a changed child marks the parents it is linked to; a removed one too, before its links go', async () => {
    const { u, p1, p2 } = await seed();
    const v = await users().save({ name: 'v', favorites: [p1] });
    await h.reset();
    await posts().save({ id: p1.id, title: 'renamed' });
    expect(await h.members()).toEqual(m('CpUser', u.id, v.id));
    await h.reset();
    await posts().update({ title: 'renamed' }, { title: 'again' });
    expect(await h.members()).toEqual(m('CpUser', u.id, v.id));
    await h.reset();
    await posts().save({ id: p2.id, title: 'nobody likes me' });
    expect(await h.heat()).toEqual({});
    // Removing a user removes its join rows: both ends of each are marked (the removed user too,
    // whose recompute then finds no row).
    await users().remove(await users().findOneByOrFail({ id: v.id }));
    expect(await h.members()).toEqual(both([v.id], [p1.id]));
    await h.reset();
    // A post removed by criteria: its links are read before the DELETE (and its join rows' ON DELETE).
    await posts().delete({ id: p1.id });
    expect(await h.members()).toEqual(m('CpUser', u.id));
  });

  it('link changes inside a transaction go in one round trip after COMMIT', async () => {
    const { u, p1, p2, p3 } = await seed();
    await ds().transaction(async (tx) => {
      await tx.createQueryBuilder().relation(CpUser, 'favorites').of(u).add(p2);
      const loaded = await tx.findOneOrFail(CpUser, { where: { id: u.id }, relations: { favorites: true } });
      loaded.favorites = [p2, p3];
      await tx.save(loaded);
      expect(await h.heat()).toEqual({});
    });
    expect(await h.members()).toEqual(both([u.id], [p1.id, p2.id, p3.id]));
  });
});

describe('registration of many-to-many children', () => {
  it('accepts the relation on either entity and names the bad one', async () => {
    const db = await createTestDb('cap_links_reg', { entities: CAPTURE_ENTITIES });
    const c = new Coalescer({ dataSource: db.dataSource, redis: redisUrl(), namespace: 'unused', logger: testLogger() });
    try {
      const noop = { recompute: async () => undefined };
      c.parent(CpUser, noop).parent(CpPost, noop).parent(CpOrder, noop);
      // The relation declared on the child (CpUser.favorites names CpPost, the parent).
      expect(() => c.child(CpUser, { parent: CpPost, via: 'favorites' })).not.toThrow();
      expect(() => c.child(CpPost, { parent: CpUser, via: 'favourites' })).toThrow(
        /child CpPost: via "favourites" is not a many-to-many relation between CpUser and CpPost \(many-to-many relations: CpUser\.favorites, CpPost\.fans\)/,
      );
      expect(() => c.child(CpRelLine, { parent: CpOrder, via: 'order' })).toThrow(RegistrationError);
      expect(() => c.child(CpPost, { parent: CpUser })).toThrow(
        /child CpPost: give exactly one of foreignKey .* or via .*, got neither/,
      );
      expect(() => c.child(CpPost, { parent: CpUser, foreignKey: 'id', via: 'fans' })).toThrow(
        /got foreignKey "id" and via "fans"/,
      );
      expect(() => c.child(CpUser, { parent: CpPost, foreignKey: 'favorites' })).toThrow(
        /register it with \{ via: 'favorites' \}/,
      );
    } finally {
      await c.close();
      await db.destroy();
    }
  });
});
