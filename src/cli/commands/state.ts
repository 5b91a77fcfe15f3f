import type { Command } from 'commander';
import { withApp, print, ms } from '../shared';

/** `coalesce state`. */
export function addStateCommand(program: Command): void {
  program
    .command('state')
    .description('One parent: waiting or not, heat, age of its first change, in flight, retrying, dead.')
    .argument('<parent>', 'parent entity name, e.g. Order')
    .argument('<id>', 'its id')
    .option('--json', 'print as JSON')
    .action(async (parent: string, id: string, o: { json?: boolean }) => {
      await withApp(program, async (coalescer) => {
        const s = await coalescer.state(parent, id);
        if (o.json) {
          print(JSON.stringify(s));
          return;
        }
        const what = s.dead
          ? `dead (attempts ${s.dead.attempts}): ${s.dead.error}`
          : s.inflight
            ? 'being recomputed now'
            : s.retrying
              ? `retrying (attempts ${s.retrying.attempts})`
              : s.settling
                ? 'settling'
                : s.waiting
                  ? 'pending'
                  : 'fresh';
        print(`${s.member}  ${what}`);
        if (s.waiting) print(`  heat ${s.heat}, first change ${ms(s.firstMarkAgeMs)} ago`);
        if (s.changedMeanwhile > 0) print(`  changed ${s.changedMeanwhile} times meanwhile: one more recompute follows`);
        if (s.kept) print('  a change waits in the outbox (made while Redis was away): the next drain relays it');
      });
    });
}
