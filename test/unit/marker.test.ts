import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Marker, type FenceWatch, type MarkerOptions } from '../../src/delivery/marker';
import { Marks } from '../../src/redis/marks';
import { keysFor } from '../../src/redis/keys';
import type { MarkEntry } from '../../src/redis/records';
import { defineScripts, type Conn } from '../../src/redis/scripts';
import { recordingLogger } from '../support/capture-entities';
import { redisUrl, suffix, waitFor } from '../support';

// The marker against a real Redis and against a port nothing listens on, with its clock given.

describe('Marker', () => {
  let up: Redis;
  let down: Redis;
  beforeAll(() => {
    up = new Redis(redisUrl());
    // Fails fast, as the marker's own connection does.
    down = new Redis({ host: '127.0.0.1', port: 1, maxRetriesPerRequest: 1, connectTimeout: 200, lazyConnect: true });
    down.on('error', () => undefined);
    for (const c of [up, down]) defineScripts(c);
  });
  afterAll(() => {
    up.disconnect();
    down.disconnect();
  });

  /** A marker on `conn` whose kept marks go to `kept`; `options` replace the defaults (its marks, fence...). */
  function marker(
    conn: Conn,
    kept: MarkEntry[][],
    options: Partial<MarkerOptions> = {},
  ): { marker: Marker; log: ReturnType<typeof recordingLogger> } {
    const log = recordingLogger('info');
    const marks = new Marks(conn);
    return {
      log,
      marker: new Marker({
        marks,
        bulk: marks,
        logger: log.logger,
        clock: () => 7_000,
        keep: async (entries) => void kept.push([...entries]),
        timeoutMs: 300,
        awaitMarks: true,
        reachable: () => true,
        clockReady: async () => undefined,
        ...options,
      }),
    };
  }

  it('sends marks with its clock, and tells the fence watch the generation Redis gave', async () => {
    const conn = { client: up, keys: keysFor(`marker-${suffix()}`) };
    const seen: [number, number | undefined, number, string][] = [];
    const fence: FenceWatch = {
      floors: () => ({ all: 3, own: 2 }),
      observe: (value, before, atSend, epoch) => void seen.push([value, before, atSend.all, epoch]),
    };
    const { marker: m } = marker(conn, [], { fence });
    const sent = await m.send([{ member: 'Doc:1', increment: 2, base: 1e12 }]);
    expect(sent.delivered).toBe(true);
    expect(Number(await up.zscore(conn.keys.since, 'Doc:1'))).toBe(7_000);
    expect(Number(await up.zscore(conn.keys.pending, 'Doc:1'))).toBe(1e12 + 2);
    expect(seen).toEqual([[sent.generation, undefined, 3, '']]);
    expect(m.stats).toMatchObject({ marks: 1, roundTrips: 1, undelivered: 0 });
  });

  it('keeps what Redis does not take, and says so once per outage, then once when it is over', async () => {
    const kept: MarkEntry[][] = [];
    const gone = marker({ client: down, keys: keysFor(`marker-${suffix()}`) }, kept);
    for (let i = 0; i < 5; i += 1) {
      const sent = await gone.marker.send([{ member: `Doc:${i}`, increment: 1, base: 1e12 }]);
      expect(sent.delivered).toBe(false);
    }
    await gone.marker.settled();
    expect(kept.map((k) => k[0]?.member)).toEqual(['Doc:0', 'Doc:1', 'Doc:2', 'Doc:3', 'Doc:4']);
    expect(gone.log.lines.filter((l) => l.msg.includes('Redis does not take marks'))).toHaveLength(1);
    // The same log's outage ends with the first delivered send.
    gone.marker.outage.delivered();
    expect(gone.log.lines.find((l) => l.msg.includes('Redis takes marks again'))).toMatchObject({ sends: 5, kept: 5, lost: 0 });
  });

  it("joins the save path's sends of one turn into one script call, each caller getting the reply; a failed joint send keeps each caller's marks", async () => {
    const conn = { client: up, keys: keysFor(`marker-${suffix()}`) };
    const calls: number[] = [];
    const counting = new Marks(conn);
    const mark = counting.mark.bind(counting);
    counting.mark = (entries, now) => {
      calls.push(entries.length);
      return mark(entries, now);
    };
    const { marker: m } = marker(conn, [], { marks: counting, bulk: counting });
    const sent = await Promise.all([
      m.send([{ member: 'Doc:1', increment: 1, base: 1e12 }]),
      m.send([
        { member: 'Doc:1', increment: 2, base: 1e12 },
        { member: 'Doc:2', increment: 1, base: 1e12 },
      ]),
      m.send([{ member: 'Doc:3', increment: 1, base: 1e12 }]),
    ]);
    expect(calls).toEqual([3]);
    expect(m.stats).toMatchObject({ marks: 4, roundTrips: 1 });
    expect(sent.map((s) => s.delivered)).toEqual([true, true, true]);
    expect(new Set(sent.map((s) => s.generation)).size).toBe(1);
    expect(Number(await up.zscore(conn.keys.pending, 'Doc:1'))).toBe(1e12 + 3);
    expect(await up.zcard(conn.keys.pending)).toBe(3);

    const kept: MarkEntry[][] = [];
    const { marker: gone } = marker({ client: down, keys: keysFor(`marker-${suffix()}`) }, kept);
    const failed = await Promise.all([
      gone.send([{ member: 'Doc:4', increment: 1, base: 1e12 }]),
      gone.send([{ member: 'Doc:5', increment: 1, base: 1e12 }]),
    ]);
    expect(failed.map((s) => s.delivered)).toEqual([false, false]);
    await gone.settled();
    expect(kept.map((k) => k.map((e) => e.member)).sort()).toEqual([['Doc:4'], ['Doc:5']]);
  });

  it('settled() waits for the sends started before it, not for a send started after it (a save path that never pauses does not hold it)', async () => {
    const conn = { client: up, keys: keysFor(`marker-${suffix()}`) };
    const real = new Marks(conn);
    const calls: string[][] = [];
    // Each send is held until the test lets it through, so both are in flight at once.
    const gates = new Map<string, () => void>();
    const held = new Map<string, Promise<void>>(
      ['Doc:before', 'Doc:later'].map((member) => [member, new Promise<void>((resolve) => gates.set(member, resolve))]),
    );
    const open = (member: string): void => (gates.get(member) as () => void)();
    const gated: Pick<Marks, 'mark'> = {
      mark: async (entries, now) => {
        calls.push(entries.map((e) => e.member));
        await held.get(entries[0]?.member ?? '');
        return real.mark(entries, now);
      },
    };
    const { marker: m } = marker(conn, [], {
      marks: gated,
      bulk: gated,
      // Longer than the test may take: a send held here never ends by its deadline.
      timeoutMs: 600_000,
      awaitMarks: false,
    });
    await m.dispatch(() => m.send([{ member: 'Doc:before', increment: 1, base: 1e12 }]));
    const settled = m.settled();
    await waitFor(async () => calls.length === 1, 'the first send to go out');
    await m.dispatch(() => m.send([{ member: 'Doc:later', increment: 1, base: 1e12 }]));
    await waitFor(async () => calls.length === 2, 'the second send to go out');
    open('Doc:before');
    await settled;
    expect(await up.zscore(conn.keys.pending, 'Doc:before')).not.toBeNull();
    expect(await up.zscore(conn.keys.pending, 'Doc:later')).toBeNull();
    open('Doc:later');
    await m.settled();
    expect(await up.zscore(conn.keys.pending, 'Doc:later')).not.toBeNull();
    expect(calls).toEqual([['Doc:before'], ['Doc:later']]);
  });
});
