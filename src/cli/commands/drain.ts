import type { Command } from 'commander';
import { Progress } from '../progress';
import { count, withApp, print, ms, EXIT } from '../shared';

/** `coalesce drain`. */
export function addDrainCommand(program: Command): void {
  program
    .command('drain')
    .description('Drain once: recompute every pending parent (and those marked meanwhile), then exit.')
    .option('--once', 'one full drain (the only mode; kept for clarity in scripts)')
    .option('--concurrency <n>', 'recomputes at once', count('--concurrency'), 4)
    .option('--max <n>', 'stop after claiming this many parents', count('--max'))
    .option('--max-ms <ms>', 'stop claiming after this long (what is claimed finishes)', count('--max-ms'))
    .option('--json', 'print the summary as JSON')
    .action(async (o: { concurrency: number; max?: number; maxMs?: number; json?: boolean }) => {
      await withApp(program, async (coalescer) => {
        const bar = new Progress('drain');
        const r = await coalescer.drain({
          concurrency: o.concurrency,
          ...(o.max === undefined ? {} : { max: o.max }),
          ...(o.maxMs === undefined ? {} : { maxMs: o.maxMs }),
          onProgress: (p) =>
            bar.update(p.recomputed + p.failed, Math.max(p.pendingAtStart, p.claimed), `lost races ${p.lostRaces}`),
        });
        bar.done();
        if (o.json) print(JSON.stringify(r));
        else {
          print(`recomputed ${r.recomputed} of ${r.claimed} claimed in ${ms(r.durationMs)}`);
          print(
            `failed ${r.failed} (dead-lettered ${r.deadLettered}), marked again meanwhile ${r.rearmed}, lost races ${r.lostRaces}`,
          );
          if (r.reaped > 0) print(`expired leases given back first: ${r.reaped}`);
        }
        if (r.failed > 0) process.exitCode = EXIT.failed;
      });
    });
}
