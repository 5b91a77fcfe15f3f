import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, serveDashboard, type Coalescer, type DashboardServer, type DashboardState } from '../../src';
import {
  createTestDb,
  databaseUrl,
  dispose,
  redisUrl,
  seedOrders,
  shopCoalescer,
  waitFor,
  type TestDb,
  internals,
} from '../support';

const TOKEN = 'test-token-5f1c';
const root = join(__dirname, '..', '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const app = join(root, 'test', 'fixtures', 'shop-app.cjs');

/** Chromium as Debian installs it (`apt-get install -y chromium`), headless, on a profile of its own. */
async function launchBrowser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  // Fail loudly, never skip: a dashboard nobody rendered is not tested.
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'coalesce-dashboard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** A raw HTTP exchange, so tests choose every header (the Host one included). */
function raw(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const bearer = { Authorization: `Bearer ${TOKEN}` };
const json = { 'Content-Type': 'application/json' };

describe('the dashboard', () => {
  let db: TestDb;
  let coalescer: Coalescer;
  let server: DashboardServer;
  let ids: number[];
  /** Orders whose recompute always throws. */
  const failing = new Set<number>();
  const servers: DashboardServer[] = [];

  beforeAll(async () => {
    db = await createTestDb('dashboard');
    coalescer = shopCoalescer(db.dataSource, {
      retry: { attempts: 1 },
      before: (batch) => {
        const bad = batch.find((id) => failing.has(id));
        if (bad !== undefined) throw new Error(`order ${bad} has a line with a negative quantity`);
      },
    });
    await coalescer.attach();
    ids = await seedOrders(db.dataSource, 8, 2);
    // One dead parent: its recompute always throws and gets one attempt.
    failing.add(ids[0] as number);
    await coalescer.mark('Order', ids[0] as number);
    const drained = await coalescer.drain();
    expect(drained.deadLettered).toBe(1);
    // Five pending, one of them hot.
    for (let i = 0; i < 5; i += 1) await coalescer.mark('Order', ids[1] as number);
    await coalescer.mark('Order', ids.slice(2, 6));
    server = await serveDashboard(coalescer, { port: 0, token: TOKEN, sampleMs: 200 });
    servers.push(server);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await dispose(coalescer);
    await db.destroy();
  });

  it('GET /api/state gives the figures of the namespace', async () => {
    const res = await raw(server.port, '/api/state', { headers: bearer });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    const state = JSON.parse(res.body) as DashboardState & { history: unknown[] };
    expect(state.namespace).toBe(coalescer.namespace);
    expect(state.stats).toMatchObject({ pending: 5, dead: 1, inflight: 0, delayed: 0 });
    expect(state.tiers).toEqual([
      { priority: 'critical', pending: 0 },
      { priority: 'high', pending: 0 },
      { priority: 'normal', pending: 5 },
      { priority: 'low', pending: 0 },
    ]);
    expect(state.types).toEqual([{ name: 'Order', priority: 'normal', pending: 5 }]);
    expect(state.typeScan).toEqual({ scanned: 5, total: 5, exact: true });
    expect(state.hottest[0]).toEqual({ member: `Order:${ids[1]}`, heat: 5, priority: 'normal' });
    expect(state.hottest).toHaveLength(5);
    expect(state.dead).toEqual([
      expect.objectContaining({ member: `Order:${ids[0]}`, attempts: 1, error: expect.stringContaining('negative quantity') }),
    ]);
    expect(state.history.length).toBeGreaterThan(0);
    expect(state.history[0]).toMatchObject({ pending: 5, dead: 1 });
  });

  it('with a token, a request without it or with a wrong one is refused, and retry/purge need it', async () => {
    for (const path of ['/', '/api/state', '/api/events', `/api/state?token=wrong`]) {
      const res = await raw(server.port, path);
      expect(res.status, path).toBe(401);
      expect(res.headers['www-authenticate']).toContain('Bearer');
      expect(JSON.parse(res.body).error).toMatch(/token/);
    }
    expect((await raw(server.port, '/api/state', { headers: { Authorization: 'Bearer nope' } })).status).toBe(401);
    // The page takes the token in its address and the API in a header.
    expect((await raw(server.port, `/?token=${TOKEN}`)).status).toBe(200);
    for (const verb of ['retry', 'purge']) {
      const body = JSON.stringify({ all: true });
      const none = await raw(server.port, `/api/dead/${verb}`, { method: 'POST', headers: json, body });
      expect(none.status).toBe(403);
      expect(JSON.parse(none.body).error).toMatch(/token is required/);
      // Actions never take the token from the address: it would end up in logs and histories.
      const inQuery = await raw(server.port, `/api/dead/${verb}?token=${TOKEN}`, { method: 'POST', headers: json, body });
      expect(inQuery.status).toBe(403);
    }
    expect(await coalescer.dead.list()).toHaveLength(1);
  });

  it('POST-only actions refuse GET; bad bodies and unknown routes get a clear JSON error', async () => {
    const get = await raw(server.port, '/api/dead/retry', { headers: bearer });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect(JSON.parse(get.body).error).toBe('GET /api/dead/retry is not allowed: use POST');
    expect((await raw(server.port, '/api/state', { method: 'POST', headers: { ...bearer, ...json }, body: '{}' })).status).toBe(
      405,
    );

    const post = (body: string, headers: Record<string, string> = json) =>
      raw(server.port, '/api/dead/purge', { method: 'POST', headers: { ...bearer, ...headers }, body });
    const badShape = await post(JSON.stringify({ members: 'Order:1' }));
    expect(badShape.status).toBe(400);
    expect(JSON.parse(badShape.body).error).toContain('{"members": ["Order:42", ...]}');
    expect((await post(JSON.stringify({ all: false }))).status).toBe(400);
    expect((await post(JSON.stringify({ members: [] }))).status).toBe(400);
    const notJson = await post('{members');
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body).error).toMatch(/not JSON/);
    const form = await post('all=true', { 'Content-Type': 'application/x-www-form-urlencoded' });
    expect(form.status).toBe(415);
    expect(await coalescer.dead.list()).toHaveLength(1);

    const missing = await raw(server.port, '/api/nothing', { headers: bearer });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error).toMatch(/^not found: GET \/api\/nothing \(routes: \/, \/api\/state/);
  });

  it('GET /api/events streams samples as Server-Sent Events', async () => {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${server.port}/api/events?token=${TOKEN}`, { signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!/event: sample\ndata: .*\n\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    controller.abort();
    const data = /event: sample\ndata: (.*)\n\n/.exec(text)?.[1];
    expect(JSON.parse(data ?? 'null')).toMatchObject({ pending: 5, dead: 1, inflight: 0 });
  });

  describe('in a browser', () => {
    let browser: Awaited<ReturnType<typeof launchBrowser>>;
    let page: Page;
    const errors: string[] = [];
    beforeAll(async () => {
      browser = await launchBrowser();
      page = await browser.context.newPage();
      // A script error or a request the page's policy blocks shows up here.
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.setViewportSize({ width: 1400, height: 1300 });
    });
    afterAll(async () => {
      await browser?.close();
    });

    const figure = (name: string) => page.locator(`[data-figure="${name}"]`);
    const waitForText = (selector: ReturnType<Page['locator']>, text: string | RegExp, what: string) =>
      waitFor(async () => {
        const t = (await selector.textContent()) ?? '';
        return typeof text === 'string' ? t.trim() === text : text.test(t);
      }, what);

    it('renders the figures, the hottest parent and the dead one with its error', async () => {
      await page.goto(`${server.url}?token=${TOKEN}`);
      await waitForText(figure('pending'), '5', 'the pending figure');
      expect(await figure('dead').textContent()).toBe('1');
      expect(await page.locator('#namespace').textContent()).toBe(coalescer.namespace);
      await waitForText(page.locator('#connection'), 'live', 'the event stream');

      const hottest = page.locator('#hottest tbody tr').first();
      expect(await hottest.getAttribute('data-member')).toBe(`Order:${ids[1]}`);
      expect((await hottest.locator('td').allTextContents()).slice(0, 3)).toEqual([`Order:${ids[1]}`, 'normal', '5']);
      expect(await page.locator('#tiers tr[data-tier="normal"] td').nth(1).textContent()).toBe('5');
      expect(await page.locator('#types tr[data-type="Order"] td').nth(1).textContent()).toBe('5');

      const dead = page.locator(`#dead tr[data-member="Order:${ids[0]}"]`);
      expect(await dead.locator('td.error').textContent()).toContain('negative quantity');
      expect(await page.locator('svg#plot-backlog polyline, svg#plot-backlog circle').count()).toBeGreaterThan(0);
      expect(errors).toEqual([]);
    });

    it('updates live: marking more parents changes the pending figure without a reload', async () => {
      await coalescer.mark('Order', ids.slice(6, 8));
      await waitForText(figure('pending'), '7', 'the pending figure to follow the marks');
      await waitFor(async () => (await page.locator('#hottest tbody tr').count()) === 7, 'the hottest list to follow');
    });

    it('the retry button of a dead parent revives it', async () => {
      const dead = page.locator(`#dead tr[data-member="Order:${ids[0]}"]`);
      await dead.getByRole('button', { name: 'Retry' }).click();
      await waitForText(page.locator('#action-result'), 'retried 1 dead parent', 'the retry to answer');
      expect(await coalescer.dead.list()).toEqual([]);
      const stats = await coalescer.stats();
      expect(stats).toMatchObject({ dead: 0, pending: 8 });
      expect(await coalescer.hottest(10)).toContainEqual({ member: `Order:${ids[0]}`, heat: 1 });
      await waitFor(async () => (await dead.count()) === 0, 'the dead row to go');
      await waitForText(figure('dead'), '0', 'the dead figure');
      await waitForText(figure('pending'), '8', 'the pending figure');
    });

    it('shows recomputes and failures as they happen', async () => {
      // The revived parent still fails: a drain recomputes 7 and dead-letters it again.
      const r = await coalescer.drain({ concurrency: 2 });
      expect(r).toMatchObject({ recomputed: 7, failed: 1, deadLettered: 1 });
      await waitForText(page.locator('#count-recomputed'), '7', 'the recomputes to stream');
      await waitForText(page.locator('#count-failed'), '1', 'the failure to stream');
      await waitForText(
        page.locator('#activity li[data-type="failed"]').first(),
        /failed Order:\d+ .*dead-lettered.*negative quantity/,
        'the failure line',
      );
      await waitForText(figure('pending'), '0', 'the pending figure to empty');
      await waitForText(figure('dead'), '1', 'the dead figure');
      await waitFor(
        async () => (await page.locator(`#dead tr[data-member="Order:${ids[0]}"]`).count()) === 1,
        'the dead row back',
      );
      // For a person to look at (not committed): figures, plots, lists and activity after a drain.
      await page.screenshot({ path: join(tmpdir(), 'coalesce-dashboard.png'), fullPage: true });
    });

    it('the purge button removes the dead parent for good', async () => {
      page.once('dialog', (d) => void d.accept());
      await page.locator(`#dead tr[data-member="Order:${ids[0]}"]`).getByRole('button', { name: 'Purge' }).click();
      await waitForText(page.locator('#action-result'), 'purged 1 dead parent', 'the purge to answer');
      expect(await coalescer.stats()).toMatchObject({ dead: 0, pending: 0 });
      await waitForText(figure('dead'), '0', 'the dead figure');
      expect(errors).toEqual([]);
    });
  });

  it('options: off loopback a token is required; bad options name themselves', async () => {
    await expect(serveDashboard(coalescer, { port: 0, host: '0.0.0.0' })).rejects.toThrow(ConfigError);
    await expect(serveDashboard(coalescer, { port: 0, host: '0.0.0.0' })).rejects.toThrow(
      /dashboard option "host" = "0.0.0.0": not a loopback address, so a "token" is required/,
    );
    await expect(serveDashboard(coalescer, { port: 70000 })).rejects.toThrow(/dashboard option "port" = 70000/);
    await expect(serveDashboard(coalescer, { port: 0, token: 'has space' })).rejects.toThrow(
      /dashboard option "token" = "has space": expected printable ASCII without spaces/,
    );
    await expect(serveDashboard(coalescer, { port: 0, sampleMs: 5000, historyMs: 1000 })).rejects.toThrow(/"historyMs" = 1000/);
  });

  it('without a token: loopback only; a Host that is not a loopback name, or a POST from another origin, is refused', async () => {
    const open = await serveDashboard(coalescer, { port: 0 });
    servers.push(open);
    expect((await raw(open.port, '/api/state')).status).toBe(200);
    expect((await raw(open.port, '/', { headers: { Host: `localhost:${open.port}` } })).status).toBe(200);
    const rebound = await raw(open.port, '/api/state', { headers: { Host: `attacker.example:${open.port}` } });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).error).toContain('attacker.example');
    // A page of another site may send a POST here (a form, or fetch in no-cors mode): its Origin says so.
    const purge = (origin: string) =>
      raw(open.port, '/api/dead/purge', {
        method: 'POST',
        headers: { ...json, Origin: origin },
        body: JSON.stringify({ members: ['Order:999999'] }),
      });
    const elsewhere = await purge('http://evil.example');
    expect(elsewhere.status).toBe(403);
    expect(JSON.parse(elsewhere.body).error).toContain('evil.example');
    const own = await purge(`http://127.0.0.1:${open.port}`);
    expect(own.status).toBe(200);
    expect(JSON.parse(own.body)).toEqual({ purged: 0 });
    await open.close();
    await open.close();
    await expect(raw(open.port, '/api/state')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('per-type counts: a large pending set is sampled, and types this process does not register are listed', async () => {
    const other = shopCoalescer(db.dataSource);
    const mine: DashboardServer[] = [];
    try {
      await other.mark(
        'Order',
        Array.from({ length: 300 }, (_, i) => i + 1),
      );
      // A member of a type another app registers.
      await internals(other).delivery.mark([{ member: 'Invoice:7', increment: 1, base: 0 }]);
      const small = await serveDashboard(other, { port: 0, typeScanLimit: 100 });
      mine.push(small);
      const state = JSON.parse((await raw(small.port, '/api/state')).body) as DashboardState;
      expect(state.stats.pending).toBe(301);
      expect(state.typeScan.exact).toBe(false);
      expect(state.typeScan.total).toBe(301);
      expect(state.typeScan.scanned).toBeGreaterThanOrEqual(100);
      expect(state.typeScan.scanned).toBeLessThan(301);
      expect(state.types.reduce((n, t) => n + t.pending, 0)).toBe(state.typeScan.scanned);
      expect(state.tiers).toContainEqual({ priority: 'low', pending: 1 });
      expect(state.tiers).toContainEqual({ priority: 'normal', pending: 300 });

      const full = await serveDashboard(other, { port: 0 });
      mine.push(full);
      const exact = JSON.parse((await raw(full.port, '/api/state')).body) as DashboardState;
      expect(exact.typeScan).toEqual({ scanned: 301, total: 301, exact: true });
      expect(exact.types).toEqual([
        { name: 'Order', priority: 'normal', pending: 300 },
        { name: 'Invoice', pending: 1 },
      ]);
    } finally {
      for (const d of mine) await d.close();
      await dispose(other);
    }
  });

  describe('from the command line', () => {
    const children: ChildProcess[] = [];
    afterEach(() => {
      // A test fails if it leaves a process running.
      const left = children.splice(0).filter((c) => c.exitCode === null && c.signalCode === null);
      for (const c of left) c.kill('SIGKILL');
      expect(left.map((c) => c.pid)).toEqual([]);
    });

    function start(args: string[], extra: NodeJS.ProcessEnv = {}) {
      const env = {
        ...process.env,
        DATABASE_URL: databaseUrl(),
        REDIS_URL: redisUrl(),
        TEST_SCHEMA: db.schema,
        TEST_NAMESPACE: coalescer.namespace,
        ...extra,
      };
      const child = spawn(process.execPath, [cli, '--app', app, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout?.resume();
      const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
        child.on('close', (code) => resolve({ code, stderr })),
      );
      const port = async (): Promise<number> => {
        let found = 0;
        await waitFor(() => {
          found = Number(/dashboard of namespace "[^"]+" on http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr)?.[1] ?? 0);
          return found > 0 || child.exitCode !== null;
        }, 'the dashboard to listen');
        if (found === 0) throw new Error(`the dashboard did not start: ${stderr}`);
        return found;
      };
      return { child, done, port };
    }

    it('coalesce dashboard serves the page and the state, and stops on SIGTERM', async () => {
      await coalescer.mark('Order', ids.slice(0, 3));
      // Whatever earlier tests left pending is shown too: the figure is the namespace's.
      const { pending } = await coalescer.stats();
      expect(pending).toBeGreaterThanOrEqual(3);
      const proc = start(['dashboard', '--port', '0'], { COALESCE_DASHBOARD_TOKEN: TOKEN });
      const port = await proc.port();
      const page = await raw(port, `/?token=${TOKEN}`);
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toContain('text/html');
      expect(page.headers['content-security-policy']).toContain("default-src 'none'");
      expect(page.body).toContain('data-figure="pending"');
      expect((await raw(port, '/api/state')).status).toBe(401);
      const state = JSON.parse((await raw(port, '/api/state', { headers: bearer })).body) as DashboardState;
      expect(state).toMatchObject({ namespace: coalescer.namespace, stats: { pending }, runner: null });
      proc.child.kill('SIGTERM');
      const r = await proc.done;
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('SIGTERM: stopping the dashboard');
      await coalescer.drain();
    });

    it('coalesce run --dashboard-port shows its runner; a non-loopback host without a token is a usage error', async () => {
      const proc = start(['run', '--schedule', '* * * * * *', '--dashboard-port', '0']);
      const port = await proc.port();
      await waitFor(async () => {
        const s = JSON.parse((await raw(port, '/api/state')).body) as DashboardState;
        return s.runner?.status === 'running' && s.runner.counts.ticks > 0;
      }, 'the runner to tick');
      proc.child.kill('SIGTERM');
      expect((await proc.done).code).toBe(0);

      const refused = await start(['dashboard', '--port', '0', '--host', '0.0.0.0']).done;
      expect(refused.code).toBe(2);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toContain('not a loopback address, so a "token" is required');
    });
  });
});
