import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Coalescer } from '../coalescer';
import { errorMessage } from '../errors';
import { coalescerActivity, type Activity } from './activity';
import { COMMON_HEADERS, HttpError, hostnameOf, readJson, sameToken, sendJson, tokenOf } from './http';
import { isLoopback, resolveDashboardOptions, type DashboardOptions, type ResolvedDashboardOptions } from './options';
import { dashboardPage } from './page';
import { Sampler } from './sampler';
import { readState } from './state';
import { EventStream } from './stream';

/** A running dashboard. */
export interface DashboardServer {
  /** The port it listens on (useful when 0 was asked for). */
  readonly port: number;
  readonly host: string;
  /** The page's address, without the token. */
  readonly url: string;
  /** Stops sampling, ends the event streams and closes the HTTP server. Idempotent. */
  close(): Promise<void>;
}

/** Largest request body accepted (a retry or purge of many members). */
const BODY_LIMIT = 256 * 1024;

const deadAction = z.union([
  z.object({ members: z.array(z.string().min(1)).min(1).max(1000) }).strict(),
  z.object({ all: z.literal(true) }).strict(),
]);
const DEAD_ACTION_SHAPE = '{"members": ["Order:42", ...]} (1 to 1000 members) or {"all": true}';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> | void;

/**
 * Serves a live page of one namespace at `http://host:port/`: pending parents by type and by
 * priority tier, the hottest ones, lag (oldest pending, wait p50/p99) plotted over the last
 * `historyMs`, in flight, retrying, dead letters with their errors (retry and purge buttons),
 * the outbox, and the recomputes and failures of this process as they happen.
 *
 * JSON endpoints: `GET /api/state`, `GET /api/events` (Server-Sent Events: `sample`, `state`,
 * `recomputed`, `failed`, `drained`, `skipped`), `POST /api/dead/retry` and
 * `POST /api/dead/purge` with `{ members: string[] }` or `{ all: true }`. With a `token`, every
 * request must carry it (see {@link DashboardOptions.token}); a read without it gets 401, a
 * retry or purge 403. Errors are `{ "error": "..." }`.
 *
 * @throws ConfigError for a bad option, e.g. a non-loopback `host` without a `token`.
 */
export async function serveDashboard(coalescer: Coalescer, options: DashboardOptions): Promise<DashboardServer> {
  const o = resolveDashboardOptions(options);
  const logger = coalescer.logger.child({ component: 'dashboard' });
  const clock = coalescer.options.clock;
  const page = dashboardPage();
  const stream = new EventStream();

  const pushState = async (stats?: Awaited<ReturnType<Coalescer['stats']>>): Promise<void> => {
    if (stream.size === 0) return;
    stream.send('state', await readState(coalescer, o, stats));
  };
  const sampler = new Sampler(
    () => coalescer.stats(),
    clock,
    o.sampleMs,
    Math.max(1, Math.ceil(o.historyMs / o.sampleMs)),
    async (point, stats) => {
      stream.send('sample', point);
      // The lists (hottest, dead, per type) cost more reads: only while someone watches.
      if (stats) await pushState(stats);
    },
    (error) => logger.debug({ err: errorMessage(error) }, 'dashboard: state unavailable'),
  );
  const unsubscribe = coalescerActivity(coalescer, clock)((a: Activity) => stream.activity(a));

  const deadRoute =
    (verb: 'retry' | 'purge'): Handler =>
    async (req, res) => {
      const parsed = deadAction.safeParse(await readJson(req, BODY_LIMIT));
      if (!parsed.success) throw new HttpError(400, `POST /api/dead/${verb}: the body must be ${DEAD_ACTION_SHAPE}`);
      const n = await coalescer.dead[verb]('all' in parsed.data ? 'all' : parsed.data.members);
      logger.info({ [verb === 'retry' ? 'retried' : 'purged']: n }, `dashboard: dead ${verb}`);
      sendJson(res, 200, verb === 'retry' ? { retried: n } : { purged: n });
      // Every page open sees the change now rather than at the next sample.
      pushState().catch((error: unknown) => logger.debug({ err: errorMessage(error) }, 'dashboard: state unavailable'));
    };

  const routes: Record<string, Partial<Record<'GET' | 'POST', Handler>>> = {
    '/': {
      GET: (_req, res) => {
        res
          .writeHead(200, { ...COMMON_HEADERS, 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': page.csp })
          .end(page.html);
      },
    },
    '/api/state': {
      GET: async (_req, res) => sendJson(res, 200, { ...(await readState(coalescer, o)), history: sampler.history() }),
    },
    '/api/events': { GET: (req, res) => stream.open(req, res, COMMON_HEADERS) },
    '/api/dead/retry': { POST: deadRoute('retry') },
    '/api/dead/purge': { POST: deadRoute('purge') },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const method = req.method ?? 'GET';
    authorize(req, url, method, o);
    const route = routes[url.pathname];
    if (!route) {
      throw new HttpError(404, `not found: ${method} ${url.pathname} (routes: ${Object.keys(routes).join(', ')})`);
    }
    const handler = route[method as 'GET' | 'POST'];
    if (!handler) {
      const allowed = Object.keys(route).join(', ');
      throw new HttpError(405, `${method} ${url.pathname} is not allowed: use ${allowed}`, { Allow: allowed });
    }
    await handler(req, res, url);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        if (!res.headersSent) sendJson(res, error.status, { error: error.message }, { ...error.headers });
        return;
      }
      logger.warn({ err: errorMessage(error), url: req.url }, 'dashboard: request failed');
      if (!res.headersSent) sendJson(res, 500, { error: errorMessage(error) });
      else res.destroy();
    });
  });

  await sampler.start();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    unsubscribe();
    await sampler.stop();
    throw error;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const shownHost = o.host.includes(':') ? `[${o.host}]` : o.host;
  let closing: Promise<void> | undefined;
  return {
    port,
    host: o.host,
    url: `http://${shownHost}:${port}/`,
    close() {
      closing ??= (async () => {
        unsubscribe();
        await sampler.stop();
        stream.close();
        // Browsers keep connections alive; a stop must not wait for them.
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}

/**
 * Refuses a request that may not be served. With a token: one without it (401 for a read, 403
 * for a retry or purge). Without one (loopback only): a request naming a host that is not a
 * loopback name (a page of another site reaching this port through DNS rebinding), and a retry
 * or purge sent by a page of another origin.
 */
function authorize(req: IncomingMessage, url: URL, method: string, o: ResolvedDashboardOptions): void {
  const mutating = method !== 'GET' && method !== 'HEAD';
  if (o.token !== undefined) {
    // Page and event stream may carry it in the URL (EventSource sends no headers); actions may not.
    const given = tokenOf(req, url, !mutating);
    if (given !== undefined && sameToken(given, o.token)) return;
    const where = mutating ? 'an Authorization: Bearer header' : 'an Authorization: Bearer header or ?token=';
    const why = given === undefined ? `a token is required: send it in ${where}` : 'wrong token';
    if (mutating) throw new HttpError(403, `${method} ${url.pathname} refused: ${why}`);
    throw new HttpError(401, why, { 'WWW-Authenticate': 'Bearer realm="coalesce dashboard"' });
  }
  if (!isLoopback(hostnameOf(req.headers.host))) {
    throw new HttpError(
      403,
      `Host ${JSON.stringify(req.headers.host ?? '')} is not a loopback name; set a token to serve others`,
    );
  }
  // Without a token nothing else tells this dashboard's own page from another site's: a browser
  // names the page that sent a POST, and it must be this one.
  const origin = req.headers.origin;
  if (mutating && origin !== undefined && origin !== `http://${req.headers.host ?? ''}`) {
    throw new HttpError(403, `${method} ${url.pathname} refused: Origin ${JSON.stringify(origin)} is not this dashboard`);
  }
}
