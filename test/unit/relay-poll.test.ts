import { describe, expect, it } from 'vitest';
import type { DataSource } from 'typeorm';
import { nextPollDelay, RELAY_POLL, type PollOutcome } from '../../src/delivery/poller';
import { resolveOptions } from '../../src/config';
import { ConfigError } from '../../src';

describe('the relay poll delay', () => {
  const poll = { minMs: 10, maxMs: 200 };
  const after = (outcomes: PollOutcome[], from = poll.minMs): number[] => {
    const delays: number[] = [];
    let delay = from;
    for (const o of outcomes) delays.push((delay = nextPollDelay(delay, o, poll)));
    return delays;
  };

  it('stays at minMs while rows come, and doubles up to maxMs while none come', () => {
    expect(after(['relayed', 'relayed', 'relayed'])).toEqual([10, 10, 10]);
    expect(after(['idle', 'idle', 'idle', 'idle', 'idle', 'idle', 'idle'])).toEqual([20, 40, 80, 160, 200, 200, 200]);
    expect(after(['relayed'], 200)).toEqual([10]);
  });

  it('backs off up to 5 s after failures, or while the oldest row cannot be sent, and comes back to maxMs when idle', () => {
    const failing = after(Array.from({ length: 12 }, (): PollOutcome => 'failed'));
    expect(failing.slice(0, 4)).toEqual([20, 40, 80, 160]);
    expect(failing.at(-1)).toBe(5_000);
    expect(after(['stuck', 'stuck'], 160)).toEqual([320, 640]);
    expect(after(['idle'], 5_000)).toEqual([200]);
    // A ceiling above 5 s is not undercut by a failure.
    expect(nextPollDelay(40_000, 'failed', { minMs: 10, maxMs: 60_000 })).toBe(60_000);
  });
});

describe('the relayPoll option', () => {
  const dataSource = { getMetadata: () => undefined } as unknown as DataSource;
  const ok = { dataSource, redis: 'redis://127.0.0.1:6379' };

  it('defaults to 10 ms while rows come and 200 ms when idle; either bound may be given alone', () => {
    expect(RELAY_POLL).toEqual({ minMs: 10, maxMs: 200 });
    expect(resolveOptions(ok).relayPoll).toEqual({ minMs: 10, maxMs: 200 });
    expect(resolveOptions({ ...ok, relayPoll: { maxMs: 1_000 } }).relayPoll).toEqual({ minMs: 10, maxMs: 1_000 });
  });

  it.each([
    [{ relayPoll: { minMs: 0 } }, /"relayPoll.minMs" = 0/],
    [{ relayPoll: { minMs: 300 } }, /"relayPoll.maxMs" = 200: must be at least relayPoll.minMs \(300\)/],
    [{ relayPoll: { maxMS: 300 } }, /unknown option "relayPoll.maxMS": did you mean "relayPoll.maxMs"\?/],
    [{ relayPoll: 50 }, /"relayPoll" = 50: expected \{ minMs, maxMs \}/],
  ])('rejects %o naming the option', (bad, message) => {
    expect(() => resolveOptions({ ...ok, ...(bad as object) } as never)).toThrow(ConfigError);
    expect(() => resolveOptions({ ...ok, ...(bad as object) } as never)).toThrow(message);
  });
});
