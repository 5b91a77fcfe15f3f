import { describe, expect, it } from 'vitest';
import { waitFresh } from '../../src/fresh/wait';
import type { Generations } from '../../src/redis/reads';

// waitFresh against an event hub and reads in memory: the order in which acknowledgements,
// reads and the caller's own recompute (`runNow`) arrive.
describe('waitFresh', () => {
  const state = async () => ({ member: 'Order:1' }) as never;

  function fakes(waiting: number) {
    let watcher: ((members: readonly string[], generations: readonly string[]) => void) | undefined;
    let covered: number | undefined;
    return {
      reads: {
        generations: async (members: readonly string[]): Promise<Generations[]> =>
          members.map(() => ({
            waiting: covered !== undefined && covered >= waiting ? undefined : waiting,
            covered,
            dead: false,
          })),
      },
      hub: {
        watchAcks: async (w: typeof watcher) => {
          watcher = w;
          return async () => {
            watcher = undefined;
          };
        },
      },
      ack(member: string, generation: number): void {
        covered = generation;
        watcher?.([member], [String(generation)]);
      },
    };
  }

  it('resolves when the acknowledgement of its own recompute arrives before runNow returns', async () => {
    const f = fakes(5);
    await expect(
      waitFresh(f.reads, f.hub, ['Order:1'], {
        timeoutMs: 2_000,
        state,
        runNow: async () => f.ack('Order:1', 5),
      }),
    ).resolves.toBeUndefined();
  });

  it('runs again when a recompute elsewhere ends without covering the member', async () => {
    const f = fakes(7);
    const runs: number[] = [];
    const waited = waitFresh(f.reads, f.hub, ['Order:1'], {
      timeoutMs: 2_000,
      state,
      // The first run loses the race to another worker; the next one recomputes.
      runNow: async () => {
        runs.push(runs.length);
        if (runs.length > 1) f.ack('Order:1', 8);
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Another worker's recompute, begun before the mark, is acknowledged: it covered generation 6.
    f.ack('Order:1', 6);
    await expect(waited).resolves.toBeUndefined();
    expect(runs).toEqual([0, 1]);
  });
});
