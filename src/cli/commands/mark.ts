import type { Command } from 'commander';
import { withApp, print } from '../shared';

/** `coalesce mark`. */
export function addMarkCommand(program: Command): void {
  program
    .command('mark')
    .description('Mark parents by id, e.g. after a bulk SQL change the subscriber cannot see.')
    .argument('<parent>', 'parent entity name, e.g. Order')
    .argument('<id...>', 'ids to mark')
    .action(async (parent: string, ids: string[]) => {
      await withApp(program, async (coalescer) => {
        coalescer.registry.parentOf(parent);
        const n = await coalescer.mark(parent, ids);
        print(`marked ${n} ${parent} parent${n === 1 ? '' : 's'}`);
      });
    });
}
