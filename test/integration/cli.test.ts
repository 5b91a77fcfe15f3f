import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coalescer } from '../../src';
import {
  countMismatches,
  createTestDb,
  databaseUrl,
  dispose,
  redisClient,
  redisUrl,
  seedOrders,
  shopCoalescer,
  waitFor,
  type TestDb,
} from '../helpers';

const root = join(__dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const app = join(root, 'test', 'fixtures', 'shop-app.cjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('the coalesce command line', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    db = await createTestDb('cli');
    coalescer = shopCoalescer(db.dataSource);
    env = {
      ...process.env,
      DATABASE_URL: databaseUrl(),
      REDIS_URL: redisUrl(),
      TEST_SCHEMA: db.schema,
      TEST_NAMESPACE: coalescer.namespace,
    };
  });
  afterAll(async () => {
    await dispose(coalescer);
    await db.destroy();
  });

  function start(args: string[], extra: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<Run>; output: () => Run } {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
    return { child, done, output: () => ({ code: null, stdout, stderr }) };
  }
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<Run> => start(args, extra).done;
  const withApp = (...args: string[]): string[] => ['--app', app, ...args];

  it('--help lists the subcommands and the exit codes', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const word of ['run', 'drain', 'status', 'mark', 'rebuild', 'dead', 'Exit codes', '--app <module>'])
      expect(r.stdout).toContain(word);
    const sub = await run(['dead', 'purge', '--help']);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain('--all');
  });

  it('mark, status --json, drain --once: the orders end up fresh', async () => {
    const ids = await seedOrders(db.dataSource, 5, 3);
    const marked = await run(withApp('mark', 'Order', ...ids.map(String)));
    expect(marked).toMatchObject({ code: 0 });
    expect(marked.stdout).toContain('marked 5 Order parents');
    const status = await run(withApp('status', '--json', '--top', '3'));
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout) as { pending: number; hottest: unknown[]; namespace: string };
    expect(s).toMatchObject({ pending: 5, namespace: coalescer.namespace });
    expect(s.hottest).toHaveLength(3);
    const human = await run(withApp('status'));
    expect(human.stdout).toMatch(/pending\s+5/);
    const drained = await run(withApp('drain', '--once', '--json'));
    expect(drained.code).toBe(0);
    expect(JSON.parse(drained.stdout)).toMatchObject({ recomputed: 5, failed: 0 });
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('rebuild marks every row of a parent type in batches', async () => {
    await seedOrders(db.dataSource, 23, 1);
    const total = Number(((await db.dataSource.query('SELECT count(*) AS n FROM shop_order')) as { n: string }[])[0]?.n);
    const r = await run(withApp('rebuild', 'Order', '--batch', '7'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`marked ${total} Order parents`);
    expect((await coalescer.stats()).pending).toBe(total);
    await coalescer.drain();
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('dead list, retry and purge', async () => {
    const raw = redisClient();
    await raw.zadd(coalescer.store.keys.pending, 5, 'Order:not-a-number');
    raw.disconnect();
    const drained = await run(withApp('drain', '--json'));
    expect(drained.code).toBe(1);
    expect(JSON.parse(drained.stdout)).toMatchObject({ deadLettered: 1 });
    const list = await run(withApp('dead', 'list', '--json'));
    expect(JSON.parse(list.stdout)).toMatchObject([{ member: 'Order:not-a-number', attempts: 1 }]);
    expect((await run(withApp('dead', 'retry'))).code).toBe(2);
    expect((await run(withApp('dead', 'retry', 'Order:not-a-number'))).stdout).toContain('retried 1 dead parent');
    expect((await coalescer.stats()).pending).toBe(1);
    await coalescer.drain();
    const purged = await run(withApp('dead', 'purge', '--all'));
    expect(purged.stdout).toContain('purged 1 dead parent');
    expect((await coalescer.stats()).dead).toBe(0);
  });

  it('errors are one line with an exit code: bad module, unknown parent, unreachable services, bad arguments', async () => {
    const missing = await run(['--app', 'no/such/module.js', 'status']);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain('no such file');
    const notApp = await run(['--app', join(root, 'package.json'), 'status']);
    expect(notApp.code).toBe(2);
    const unknown = await run(withApp('mark', 'Invoice', '1'));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Invoice is not a registered parent (known: Order)');
    const redisDown = await run(withApp('status'), { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(redisDown.code).toBe(3);
    expect(redisDown.stderr).toContain('cannot reach Redis');
    expect(redisDown.stderr).not.toMatch(/\n\s+at /);
    const pgDown = await run(withApp('status'), { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres' });
    expect(pgDown.code).toBe(3);
    expect(pgDown.stderr).toContain('ECONNREFUSED');
    const badArg = await run(withApp('drain', '--concurrency', 'lots'));
    expect(badArg.code).toBe(2);
    expect(badArg.stderr).toContain('--concurrency must be a whole number');
    const verbose = await run(['--verbose', ...withApp('mark', 'Invoice', '1')]);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it('run drains on its schedule, serves metrics, and stops on SIGTERM with exit 0', async () => {
    const ids = await seedOrders(db.dataSource, 4, 2);
    await coalescer.mark('Order', ids);
    const proc = start(withApp('run', '--schedule', '* * * * * *', '--metrics-port', '0'));
    let port = 0;
    await waitFor(() => {
      const m = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(proc.output().stderr);
      if (m) port = Number(m[1]);
      return port > 0;
    }, 'the metrics endpoint');
    await waitFor(
      async () => (await coalescer.stats()).pending === 0 && (await coalescer.stats()).inflight === 0,
      'the runner to drain',
    );
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^coalesce_pending 0$/m);
    expect(text).toMatch(/^coalesce_recomputes_total\{parent="Order"\} 4$/m);
    expect(text).toContain('coalesce_recompute_duration_seconds_bucket');
    expect(text).toContain('coalesce_tick_duration_seconds_count');
    expect(text).toContain('coalesce_lost_races_total');
    expect(text).toContain('coalesce_wait_p99_seconds');
    proc.child.kill('SIGTERM');
    const r = await proc.done;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('stopped after');
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('SIGTERM during a drain loses nothing', async () => {
    const ids = await seedOrders(db.dataSource, 30, 2);
    await coalescer.mark('Order', ids);
    const proc = start(withApp('run', '--schedule', '* * * * * *', '--concurrency', '2'), { SLOW_MS: '100' });
    await waitFor(async () => (await coalescer.stats()).inflight > 0, 'recomputes in flight');
    proc.child.kill('SIGTERM');
    const r = await proc.done;
    expect(r.code).toBe(0);
    // Whatever the runner did not finish is pending again, not held by a dead lease.
    const s = await coalescer.stats();
    expect(s.inflight).toBe(0);
    expect(s.pending).toBeGreaterThan(0);
    await coalescer.drain({ concurrency: 4 });
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
    expect(await coalescer.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
  });
});
