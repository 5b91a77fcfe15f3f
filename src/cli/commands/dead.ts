import type { Command } from 'commander';
import { UsageError } from '../app';
import { heatOf } from '../../redis/score';
import { count, withApp, print } from '../shared';

/** `coalesce dead`. */
export function addDeadCommand(program: Command): void {
  const dead = program.command('dead').description('Dead-lettered parents: list, retry, purge.');
  dead
    .command('list')
    .description('List dead parents, oldest first, with their last error.')
    .option('--limit <n>', 'how many', count('--limit'), 100)
    .option('--json', 'print as JSON')
    .action(async (o: { limit: number; json?: boolean }) => {
      await withApp(program, async (coalescer) => {
        const list = await coalescer.dead.list({ limit: o.limit });
        if (o.json) print(JSON.stringify(list));
        else if (list.length === 0) print('no dead parents');
        else
          for (const d of list)
            print(`${d.member}  attempts ${d.attempts}  heat ${heatOf(d.score)}  ${new Date(d.at).toISOString()}  ${d.error}`);
      });
    });
  for (const [verb, what] of [
    ['retry', 'Give dead parents a fresh start (back to pending).'],
    ['purge', 'Remove dead parents for good.'],
  ] as const) {
    dead
      .command(verb)
      .description(what)
      .argument('[member...]', 'members such as Order:42')
      .option('--all', `${verb} every dead parent`)
      .action(async (members: string[], o: { all?: boolean }) => {
        if (!o.all && members.length === 0) throw new UsageError(`dead ${verb}: name members (e.g. Order:42) or pass --all`);
        await withApp(program, async (coalescer) => {
          const n = await coalescer.dead[verb](o.all ? 'all' : members);
          print(`${verb === 'retry' ? 'retried' : 'purged'} ${n} dead parent${n === 1 ? '' : 's'}`);
        });
      });
  }
}
