import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Coalescer } from '../../src';
import { Progress } from '../../src/cli/progress';
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
} from '../support';
import { OwnRedis } from '../support/servers';

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
  const children: ChildProcess[] = [];
  afterEach(() => {
    // A test fails if it leaves a runner process running.
    const left = children.splice(0).filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of left) c.kill('SIGKILL');
    expect(left.map((c) => c.pid)).toEqual([]);
  });
  afterAll(async () => {
    await dispose(coalescer);
    await db.destroy();
  });

  function start(args: string[], extra: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<Run>; output: () => Run } {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
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
    const runHelp = await run(['run', '--help']);
    for (const word of ['--schedule', '--concurrency', '--max-per-tick', '--max-tick-ms', '--stop-timeout-ms', '--metrics-port'])
      expect(runHelp.stdout).toContain(word);
    // No command: the help, as a usage error.
    const none = await run(['--app', app]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: coalesce');
  });

  it("--help's example of an --app module is complete: it type-checks against the package, attaches, and runs", async () => {
    const help = (await run(['--help'])).stdout.split('\n');
    const from = help.indexOf('  // app.ts, compiled to app.js');
    const to = help.indexOf('  }', from);
    expect(from, 'the example in --help').toBeGreaterThan(0);
    const example = help
      .slice(from, to + 1)
      .map((line) => line.slice(2))
      .join('\n');
    expect(example).toContain('await coalescer.attach();');
    // A scratch app outside the repository: the package and its peers come through node_modules.
    const dir = mkdtempSync(join(tmpdir(), 'coalesce-help-app-'));
    try {
      mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
      symlinkSync(root, join(dir, 'node_modules', 'typeorm-coalesce'));
      for (const name of ['typeorm', 'reflect-metadata', 'pg', 'ioredis', '@types/node']) {
        symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name));
      }
      const files: Record<string, string> = {
        // The test's own namespace, so that nothing of another test is touched.
        'app.ts': example.replace('{ dataSource, redis:', '{ dataSource, namespace: process.env.TEST_NAMESPACE, redis:'),
        'entities.ts': `export { Order, OrderLine } from ${JSON.stringify(join(root, 'dist', 'examples', 'shop', 'entities'))};`,
        'data-source.ts': [
          "import 'reflect-metadata';",
          "import { DataSource } from 'typeorm';",
          "import { Order, OrderLine } from './entities';",
          "const schema = process.env.TEST_SCHEMA ?? 'public';",
          'export const dataSource = new DataSource({',
          "  type: 'postgres', url: process.env.DATABASE_URL, schema, entities: [Order, OrderLine],",
          '  extra: { options: `-c search_path=${schema}` },',
          '});',
        ].join('\n'),
      };
      expect(files['app.ts']).toContain('namespace: process.env.TEST_NAMESPACE');
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
      const options: ts.CompilerOptions = {
        target: ts.ScriptTarget.ES2021,
        module: ts.ModuleKind.CommonJS,
        moduleResolution: ts.ModuleResolutionKind.Node10,
        strict: true,
        esModuleInterop: true,
        experimentalDecorators: true,
        skipLibCheck: true,
        types: ['node'],
        noEmit: true,
      };
      const program = ts.createProgram(
        Object.keys(files).map((name) => join(dir, name)),
        options,
      );
      const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      expect(diagnostics).toEqual([]);
      for (const [name, text] of Object.entries(files)) {
        const js = ts.transpileModule(text, { compilerOptions: { ...options, noEmit: false } }).outputText;
        writeFileSync(join(dir, name.replace(/\.ts$/, '.js')), js);
      }
      const ids = await seedOrders(db.dataSource, 2, 3);
      const helpApp = (...args: string[]): Promise<Run> => run(['--app', join(dir, 'app.js'), ...args]);
      expect((await helpApp('mark', 'Order', ...ids.map(String))).code).toBe(0);
      const drained = await helpApp('drain', '--once', '--json');
      expect(drained.code, drained.stderr).toBe(0);
      expect(JSON.parse(drained.stdout)).toMatchObject({ recomputed: 2, failed: 0 });
      expect(await countMismatches(db.dataSource.manager)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
    // Two more marks of one order in one call: one member, two more heat, hottest first.
    const hot = `Order:${ids[2]}`;
    expect((await run(withApp('mark', 'Order', String(ids[2]), String(ids[2])))).stdout).toContain('marked 1 Order parent\n');
    const again = JSON.parse((await run(withApp('status', '--json', '--top', '2'))).stdout) as typeof s;
    expect(again.hottest).toEqual([{ member: hot, heat: 3 }, expect.objectContaining({ heat: 1 })]);
    const human = await run(withApp('status', '--top', '1'));
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/pending\s+5/);
    expect(human.stdout).toMatch(/in flight\s+0/);
    expect(human.stdout).toMatch(/expired leases\s+0/);
    expect(human.stdout).toMatch(/oldest pending\s+\d/);
    expect(human.stdout).toMatch(new RegExp(`hottest:\\n\\s+3  ${hot}\\n$`));
    const drained = await run(withApp('drain', '--once', '--json'));
    expect(drained.code).toBe(0);
    expect(JSON.parse(drained.stdout)).toMatchObject({ recomputed: 5, failed: 0 });
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('says that Redis has no persistence once a day, not on every command; a runner says it once', async () => {
    // A Redis of the test's own, without persistence, and a namespace nobody warned about yet.
    const redis = new OwnRedis({ persist: false });
    await redis.start();
    try {
      const extra = { REDIS_URL: redis.url, TEST_LOG_LEVEL: 'warn', TEST_NAMESPACE: `warned-${coalescer.namespace}` };
      const said = (r: Run): string[] => r.stderr.split('\n').filter((line) => line.includes('Redis has no persistence'));
      const first = await run(withApp('status'), extra);
      expect(first.code, first.stderr).toBe(0);
      expect(said(first)).toHaveLength(1);
      for (const args of [['status'], ['mark', 'Order', '1'], ['dead', 'list']]) {
        const next = await run(withApp(...args), extra);
        expect(next.code, next.stderr).toBe(0);
        expect(said(next), args.join(' ')).toEqual([]);
      }
      // The long-running process says it, once, though a command said it today.
      const proc = start(withApp('run', '--schedule', '* * * * * *'), extra);
      await waitFor(() => said(proc.output()).length > 0, 'the runner to warn');
      await waitFor(() => proc.output().stderr.includes('coalesce: running namespace'), 'the runner to start');
      proc.child.kill('SIGTERM');
      const r = await proc.done;
      expect(r.code, r.stderr).toBe(0);
      expect(said(r)).toHaveLength(1);
    } finally {
      await redis.destroy();
    }
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
    await raw.zadd(coalescer.keys.pending, 5, 'Order:not-a-number');
    raw.disconnect();
    const drained = await run(withApp('drain', '--json'));
    expect(drained.code).toBe(1);
    expect(JSON.parse(drained.stdout)).toMatchObject({ deadLettered: 1 });
    const list = await run(withApp('dead', 'list', '--json'));
    expect(JSON.parse(list.stdout)).toMatchObject([{ member: 'Order:not-a-number', attempts: 1 }]);
    const listed = await run(withApp('dead', 'list'));
    expect(listed.stdout).toMatch(/^Order:not-a-number {2}attempts 1 {2}heat 5 .*not an integer/);
    expect((await run(withApp('status'))).stdout).toMatch(/dead\s+1/);
    expect((await run(withApp('dead', 'retry'))).code).toBe(2);
    expect((await run(withApp('dead', 'retry', 'Order:not-a-number'))).stdout).toContain('retried 1 dead parent');
    expect((await coalescer.stats()).pending).toBe(1);
    await coalescer.drain();
    const purged = await run(withApp('dead', 'purge', '--all'));
    expect(purged.stdout).toContain('purged 1 dead parent');
    expect((await coalescer.stats()).dead).toBe(0);
  });

  it('errors are one line with an exit code: bad module, unknown parent, unreachable services, bad arguments', async () => {
    const noApp = await run(['status'], { COALESCE_APP: undefined });
    expect(noApp.code).toBe(2);
    expect(noApp.stderr).toBe(
      "coalesce: required option '--app <module>' not specified: give --app <module.js>, your compiled module exporting the Coalescer, or set COALESCE_APP (see --help)\n",
    );
    // COALESCE_APP gives the module, as --app would.
    const fromEnv = await run(['status', '--json'], { COALESCE_APP: app });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(JSON.parse(fromEnv.stdout)).toMatchObject({ namespace: coalescer.namespace });
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
    expect(redisDown.stderr).toBe(
      'coalesce: ping(): cannot reach Redis at 127.0.0.1:1: connection refused (is redis-server running? check the redis option or REDIS_URL)\n',
    );
    const pgDown = await run(withApp('status'), { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres' });
    expect(pgDown.code).toBe(3);
    expect(pgDown.stderr).toContain('ECONNREFUSED');
    // A database that does not exist is as unreachable as one that is down.
    const noDatabase = new URL(databaseUrl());
    noDatabase.pathname = '/no_such_database_here';
    const missingDb = await run(withApp('status'), { DATABASE_URL: noDatabase.toString() });
    expect(missingDb.code).toBe(3);
    expect(missingDb.stderr).toContain('no_such_database_here');
    expect(missingDb.stderr.trim().split('\n')).toHaveLength(1);
    const badArg = await run(withApp('drain', '--concurrency', 'lots'));
    expect(badArg.code).toBe(2);
    expect(badArg.stderr).toContain('--concurrency must be a whole number');
    const verbose = await run(['--verbose', ...withApp('mark', 'Invoice', '1')]);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it('a Redis that refuses us (a password is needed) exits 3 with one line naming it and what to check', async () => {
    const redis = new OwnRedis({ persist: false });
    await redis.start();
    try {
      const raw = new Redis(redis.url);
      await raw.config('SET', 'requirepass', 'sekret');
      raw.disconnect();
      const refused = await run(withApp('status'), { REDIS_URL: redis.url });
      expect(refused.code).toBe(3);
      expect(refused.stderr).toBe(
        `coalesce: ping(): Redis at 127.0.0.1:${redis.port} refuses us: NOAUTH Authentication required. (check the password: redis://[user]:password@host:port, or the redis option)\n`,
      );
      const allowed = await run(withApp('status'), { REDIS_URL: `redis://:sekret@127.0.0.1:${redis.port}` });
      expect(allowed.code, allowed.stderr).toBe(0);
    } finally {
      await redis.destroy();
    }
  });

  it('more usage errors, each one line with exit code 2', async () => {
    const oneLine = (r: Run): void => expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const unknownRebuild = await run(withApp('rebuild', 'Invoice'));
    expect(unknownRebuild.code).toBe(2);
    expect(unknownRebuild.stderr).toContain('Invoice is not a registered parent (known: Order)');
    oneLine(unknownRebuild);
    const badId = await run(withApp('mark', 'Order', '12', 'abc'));
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('id "abc" is not an integer');
    oneLine(badId);
    const unknownOption = await run(withApp('status', '--frob'));
    expect(unknownOption.code).toBe(2);
    expect(unknownOption.stderr).toContain("unknown option '--frob'");
    oneLine(unknownOption);
    // A bad schedule is said before the app is loaded: no Redis needed to learn it.
    const badSchedule = await run(withApp('run', '--schedule', 'every minute'), { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(badSchedule.code).toBe(2);
    expect(badSchedule.stderr).toContain('"schedule" = "every minute"');
    oneLine(badSchedule);
    // A factory that throws after opening its DataSource: one line, and the process still ends.
    const failing = await run(withApp('status'), { FAIL_APP: 'no tenant configured' });
    expect(failing.code).toBe(2);
    expect(failing.stderr).toContain('creating the Coalescer failed: no tenant configured');
    oneLine(failing);
    // The metrics port is taken.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const busy = await run(withApp('run', '--metrics-port', String(port)));
      expect(busy.code).toBe(2);
      expect(busy.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      oneLine(busy);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('the progress bar draws on a terminal only', () => {
    const written: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk.toString());
        done();
      },
    }) as unknown as NodeJS.WriteStream;
    const ci = process.env.CI;
    delete process.env.CI;
    try {
      new Progress('drain', stream).update(5, 10);
      expect(written).toEqual([]);
      stream.isTTY = true;
      const bar = new Progress('drain', stream);
      bar.update(5, 10, 'lost races 0');
      bar.update(10, 10);
      bar.done();
      expect(written[0]).toMatch(/^\rdrain \[#{15}\.{15}\] 50% 5\/10 lost races 0/);
      expect(written[1]).toMatch(/^\rdrain \[#{30}\] 100% 10\/10/);
      expect(written[2]).toBe('\n');
    } finally {
      if (ci !== undefined) process.env.CI = ci;
    }
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

  it('SIGTERM with recomputes outlasting --stop-timeout-ms: exit 0, every parent recomputed or back in pending', async () => {
    const ids = await seedOrders(db.dataSource, 12, 2);
    await coalescer.mark('Order', ids);
    const proc = start(withApp('run', '--schedule', '* * * * * *', '--concurrency', '2', '--stop-timeout-ms', '50'), {
      SLOW_MS: '2000',
    });
    await waitFor(async () => (await coalescer.stats()).inflight >= 2, 'recomputes in flight');
    proc.child.kill('SIGTERM');
    const r = await proc.done;
    expect(r.code).toBe(0);
    // Nothing waits on a lease: the running and the claimed-ahead parents were given back.
    expect(await coalescer.stats()).toMatchObject({ pending: ids.length, inflight: 0 });
    await coalescer.drain({ concurrency: 4 });
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
  });

  it('a second signal during the graceful stop exits at once with 130; the leases bring the parents back', async () => {
    const ids = await seedOrders(db.dataSource, 6, 1);
    await coalescer.mark('Order', ids);
    const proc = start(withApp('run', '--schedule', '* * * * * *', '--concurrency', '2'), {
      SLOW_MS: '1500',
      LEASE_MS: '4000',
    });
    await waitFor(async () => (await coalescer.stats()).inflight > 0, 'recomputes in flight');
    proc.child.kill('SIGTERM');
    await waitFor(() => proc.output().stderr.includes('stopping'), 'the graceful stop to begin');
    proc.child.kill('SIGINT');
    const r = await proc.done;
    expect(r.code).toBe(130);
    expect(r.stderr).not.toContain('stopped after');
    // Exiting at once is a crash: what was in flight comes back when its lease expires.
    // Every lease the dead process held (claimed in one window or two) has expired.
    await waitFor(
      async () => {
        const s = await coalescer.stats();
        return s.inflight > 0 && s.expired === s.inflight;
      },
      'the leases to expire',
      10_000,
    );
    await coalescer.drain({ concurrency: 4 });
    expect(await countMismatches(db.dataSource.manager)).toBe(0);
    expect(await coalescer.stats()).toMatchObject({ pending: 0, inflight: 0, delayed: 0, dead: 0 });
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
