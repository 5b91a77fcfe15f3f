import type { Command } from 'commander';
import type { Coalescer } from '../../coalescer';
import { showValue } from '../../verify/show';
import { Progress } from '../progress';

/** What the verify command needs from the program that hosts it. */
export interface VerifyCommandDeps {
  /** Loads the app, runs `fn`, closes what the app opened. */
  withApp(fn: (coalescer: Coalescer) => Promise<void>): Promise<void>;
  /** An option parser for a whole number >= `min`. */
  count(name: string, min?: number): (value: string) => number;
  /** One line on stdout. */
  print(line: string): void;
  /** A duration for people. */
  ms(value: number | null): string;
  /** The exit code of drift found and not repaired. */
  failedCode: number;
}

/** `coalesce verify <Parent> [--sample n] [--batch n] [--repair] [--json]`. */
export function addVerifyCommand(program: Command, deps: VerifyCommandDeps): void {
  const { count, print, ms } = deps;
  program
    .command('verify')
    .description(
      "Compare a parent type's stored derived fields with what its children say (its aggregates, or its expected); " +
        'parents with a recompute pending or running are skipped. Exit 1 when drift is found and not repaired.',
    )
    .argument('<parent>', 'parent entity name, e.g. Order')
    .option('--sample <n>', 'check a random sample of n parents instead of every row', count('--sample'))
    .option('--batch <n>', 'parents compared per query', count('--batch'), 1000)
    .option('--repair', 'mark the drifted parents, so the runner (or coalesce drain) recomputes them')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, o: { sample?: number; batch: number; repair?: boolean; json?: boolean }) => {
      await deps.withApp(async (coalescer) => {
        coalescer.registry.parentOf(name);
        const bar = new Progress(`verify ${name}`);
        const r = await coalescer.verify(name, {
          batch: o.batch,
          repair: Boolean(o.repair),
          ...(o.sample === undefined ? {} : { sample: o.sample }),
          onProgress: (p) => bar.update(p.checked, p.total, `drifted ${p.drifted} skipped ${p.skipped}`),
        });
        bar.done();
        if (o.json) print(JSON.stringify(r));
        else {
          print(`checked ${r.checked} ${name} parent${r.checked === 1 ? '' : 's'} in ${ms(r.durationMs)}`);
          print(`drifted ${r.drifted}, skipped ${r.skipped} (a recompute was pending or running)`);
          for (const e of r.examples) {
            print(`  ${name}:${e.id}  ${e.field}  stored ${showValue(e.stored)}  expected ${showValue(e.expected)}`);
          }
          if (r.drifted > r.examples.length) print(`  ... (the first ${r.examples.length} shown)`);
          if (r.repaired > 0) print(`marked ${r.repaired} for a recompute; the runner (or coalesce drain) recomputes them`);
          else if (r.drifted > 0) print('run again with --repair to mark them for a recompute');
        }
        if (r.drifted > r.repaired) process.exitCode = deps.failedCode;
      });
    });
}
