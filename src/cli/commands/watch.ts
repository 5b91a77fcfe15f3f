import type { Command } from 'commander';
import { withApp, print, firstSignal, ms } from '../shared';

/** `coalesce watch`. */
export function addWatchCommand(program: Command): void {
  program
    .command('watch')
    .description("Print the namespace's live events (recomputed, failed, drained) from every process until SIGINT/SIGTERM.")
    .option('--json', 'one JSON object per event')
    .action(async (o: { json?: boolean }) => {
      await withApp(program, async (coalescer) => {
        const subscription = await coalescer.subscribe((e) => {
          if (o.json) print(JSON.stringify(e));
          else if (e.type === 'recomputed') print(`recomputed  ${e.member}  ${e.durationMs} ms  (${e.worker})`);
          else if (e.type === 'failed') {
            print(`failed      ${e.member}  attempt ${e.attempt}${e.dead ? ', dead' : ''}: ${e.error}  (${e.worker})`);
          } else {
            const r = e.result;
            print(
              `drained     ${r.recomputed} recomputed, ${r.failed} failed, ${r.lostRaces} lost races in ${ms(r.durationMs)}  (${e.worker})`,
            );
          }
        });
        process.stderr.write(`coalesce: watching namespace "${coalescer.namespace}"; SIGINT or SIGTERM stops\n`);
        await firstSignal();
        await subscription.close();
      });
    });
}
