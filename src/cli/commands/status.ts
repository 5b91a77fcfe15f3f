import type { Command } from 'commander';
import { count, withApp, print, ms } from '../shared';

/** `coalesce status`. */
export function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description('Pending, in flight, expired leases, retries, dead, lag and the hottest parents.')
    .option('--json', 'print as JSON')
    .option('--top <n>', 'how many of the hottest parents to list', count('--top', 0), 10)
    .action(async (o: { json?: boolean; top: number }) => {
      await withApp(program, async (coalescer) => {
        const [s, hottest] = await Promise.all([coalescer.stats(), o.top > 0 ? coalescer.hottest(o.top) : []]);
        const { marker: _marker, ...stats } = s;
        if (o.json) {
          print(JSON.stringify({ namespace: coalescer.namespace, ...stats, hottest }));
          return;
        }
        print(`namespace       ${coalescer.namespace}`);
        print(`pending         ${s.pending}`);
        print(`in flight       ${s.inflight}`);
        print(`expired leases  ${s.expired}`);
        print(`retrying        ${s.delayed}`);
        if (s.settling > 0) print(`settling        ${s.settling}`);
        if (s.overdue > 0) print(`overdue         ${s.overdue}`);
        if (s.dead > 0) print(`dead            ${s.dead}   (coalesce dead list)`);
        if (s.outbox === null) print('outbox          table missing: run the CoalesceOutbox migration');
        else if (s.outbox > 0) print(`outbox          ${s.outbox}   (marks waiting for Redis; the next drain relays them)`);
        print(`oldest pending  ${ms(s.oldestPendingMs)}`);
        print(`wait p50 / p99  ${ms(s.wait.p50Ms)} / ${ms(s.wait.p99Ms)}   (first mark to recompute, last ${s.wait.samples})`);
        if (hottest.length > 0) {
          print('hottest:');
          for (const h of hottest) print(`  ${String(h.heat).padStart(8)}  ${h.member}`);
        }
      });
    });
}
