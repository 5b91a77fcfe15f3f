import type { Command } from 'commander';
import { Progress } from '../progress';
import { markAll } from '../../ops/rebuild';
import type { ObjectLiteral } from 'typeorm';
import { count, withApp, print } from '../shared';

/** `coalesce rebuild`. */
export function addRebuildCommand(program: Command): void {
  program
    .command('rebuild')
    .description('Mark every row of a parent type, in batches by primary key (after a new recompute formula, or an outage).')
    .argument('<parent>', 'parent entity name, e.g. Order')
    .option('--batch <n>', 'rows read and marked per batch', count('--batch'), 1000)
    .action(async (name: string, o: { batch: number }) => {
      await withApp(program, async (coalescer) => {
        const parent = coalescer.registry.parentOf(name);
        const total = await coalescer.options.dataSource.getRepository<ObjectLiteral>(parent.metadata.target).count();
        const bar = new Progress(`rebuild ${name}`);
        const marked = await markAll(coalescer.options.dataSource, parent, (ids) => coalescer.mark(parent.name, ids), {
          batch: o.batch,
          onPage: (n) => bar.update(n, Math.max(total, n)),
        });
        bar.done();
        print(`marked ${marked} ${name} parent${marked === 1 ? '' : 's'}; the runner (or coalesce drain) recomputes them`);
      });
    });
}
