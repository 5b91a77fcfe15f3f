import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { Client, ClientConfig, Notification } from 'pg';
import { ConfigError, errorMessage } from '../errors';
import { OUTBOX_CHANNEL } from './outbox';

/** Reconnection delays of the listen connection. */
export interface ListenerBackoff {
  /** First delay after a lost connection, in ms; doubled per failed attempt. */
  readonly minMs: number;
  /** Longest delay between attempts, in ms. */
  readonly maxMs: number;
}

/** Default reconnection delays: 100 ms, doubling, at most 10 s. */
export const LISTENER_BACKOFF: ListenerBackoff = Object.freeze({ minMs: 100, maxMs: 10_000 });

type ClientClass = new (config: ClientConfig) => Client;

interface PostgresCredentials {
  url?: string;
  host?: string;
  port?: number;
  username?: string;
  password?: ClientConfig['password'];
  database?: string;
  ssl?: ClientConfig['ssl'];
}

/**
 * Relays the outbox as soon as the triggers of earlier versions say it has rows (the triggers
 * made now do not notify; the poll of the outbox finds their rows): one dedicated PostgreSQL
 * connection `LISTEN`s on their channel, and a notification naming this namespace starts a
 * relay (one in flight, at most one queued behind it, however many notifications arrive). A
 * connection that drops is opened again with backoff, and the outbox is relayed once it is
 * back, for the rows written meanwhile. Never throws nor rejects: failures are logged, and the
 * poll and the relay before each drain are the fallback.
 */
export class OutboxListener {
  private client: Client | undefined;
  /** The client once it listens. */
  private connectedClient: Client | undefined;
  private started: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private relaying: Promise<void> | undefined;
  private queued = false;
  private closed = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly namespace: string,
    private readonly relay: () => Promise<unknown>,
    private readonly logger: Logger,
    private readonly backoff: ListenerBackoff = LISTENER_BACKOFF,
  ) {}

  /** True while the connection is listening. */
  get listening(): boolean {
    return this.connectedClient !== undefined;
  }

  /**
   * Opens the connection and listens. Resolves once listening, or once the first attempt
   * failed (it is retried in the background). Idempotent.
   */
  start(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.started ??= this.connect();
    return this.started;
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    let client: Client;
    try {
      client = new (clientClass(this.dataSource))(this.config());
    } catch (error) {
      this.logger.error(
        { err: errorMessage(error) },
        'cannot open the outbox listen connection; the outbox is relayed before each drain only',
      );
      return;
    }
    this.client = client;
    // An idle client whose backend goes away emits 'error' then 'end'; unhandled, 'error' would crash the host.
    client.on('error', (error: Error) => this.logger.debug({ err: errorMessage(error) }, 'outbox listen connection error'));
    client.on('end', () => this.lost(client, undefined));
    client.on('notification', (n: Notification) => {
      if (n.channel === OUTBOX_CHANNEL && n.payload === this.namespace) this.poke();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (error) {
      this.lost(client, error);
      client.end().catch(() => undefined);
      return;
    }
    if (this.client !== client) return;
    this.connectedClient = client;
    if (this.failures > 0) this.logger.info({ channel: OUTBOX_CHANNEL }, 'outbox listen connection back; relaying the outbox');
    this.failures = 0;
    // Rows written while nobody listened (before the start, or during an outage) go now.
    this.poke();
  }

  /** The connection is gone (or never came): try again after a backoff. Once per client. */
  private lost(client: Client, error: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.connectedClient = undefined;
    if (this.closed) return;
    const delay = Math.min(this.backoff.maxMs, this.backoff.minMs * 2 ** Math.min(this.failures, 20));
    this.failures += 1;
    this.logger.warn(
      { err: error === undefined ? 'connection ended' : errorMessage(error), retryInMs: delay, attempt: this.failures },
      'outbox listen connection lost: reconnecting (meanwhile trigger marks wait for the relay before the next drain)',
    );
    this.timer = setTimeout(() => void this.connect(), delay);
    this.timer.unref();
  }

  /** Relays now, or once the relay in flight ends (notifications meanwhile come to one more relay). */
  poke(): void {
    if (this.closed) return;
    if (this.relaying) {
      this.queued = true;
      return;
    }
    this.relaying = Promise.resolve()
      .then(() => this.relay())
      .then(
        () => undefined,
        (error: unknown) => {
          this.logger.warn(
            { err: errorMessage(error) },
            'outbox relay after a notification failed; the rows wait for the next drain',
          );
        },
      )
      .finally(() => {
        this.relaying = undefined;
        if (this.queued) {
          this.queued = false;
          this.poke();
        }
      });
  }

  /** Stops listening and waits for the relay in flight. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    this.connectedClient = undefined;
    await client?.end().catch(() => undefined);
    while (this.relaying) await this.relaying;
  }

  /** The DataSource's connection settings, as TypeORM gives them to its pool, for one client of our own. */
  private config(): ClientConfig {
    const options = this.dataSource.options as {
      replication?: { master?: PostgresCredentials };
      extra?: Record<string, unknown>;
      connectTimeoutMS?: number;
    } & PostgresCredentials;
    const c = options.replication?.master ?? options;
    return {
      connectionString: c.url,
      host: c.host,
      port: c.port,
      user: c.username,
      password: c.password,
      database: c.database,
      ssl: c.ssl,
      connectionTimeoutMillis: options.connectTimeoutMS,
      ...options.extra,
      // Named so operators (and pg_stat_activity) can tell it from the pool's connections.
      application_name: `coalesce listen ${this.namespace}`.slice(0, 63),
      keepAlive: true,
    };
  }
}

/** The pg Client class of the driver TypeORM loaded (the host's pg, or pg-native's). */
function clientClass(dataSource: DataSource): ClientClass {
  const loaded = (dataSource.driver as unknown as { postgres?: { Client?: ClientClass } }).postgres?.Client;
  if (!loaded) throw new ConfigError("the DataSource's PostgreSQL driver has no pg Client class to listen with");
  return loaded;
}
