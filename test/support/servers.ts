import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { redisAnswers } from './probe';
import { waitFor } from './wait';

const run = promisify(execFile);
const usedPorts = new Set<number>();

/** A loopback port in 20000-29999 no other server of this process took. */
function freePort(): number {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (!usedPorts.has(port)) {
      usedPorts.add(port);
      return port;
    }
  }
}

/**
 * A redis-server of the test's own on a loopback port: killed, paused, restarted (with or without
 * its data) by the test, never the shared one.
 */
export class OwnRedis {
  readonly port: number;
  readonly url: string;
  private readonly dir = mkdtempSync(join(tmpdir(), 'coalesce-redis-'));
  private proc: ChildProcess | undefined;

  /** `persist`: an append-only file, so a restart keeps the data; without it a restart comes back empty. */
  constructor(private readonly options: { persist?: boolean; cluster?: boolean; port?: number; args?: string[] } = {}) {
    this.port = options.port ?? freePort();
    this.url = `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--dir', this.dir];
    if (this.options.persist ?? true) args.push('--appendonly', 'yes', '--appendfsync', 'always');
    else args.push('--appendonly', 'no');
    if (this.options.cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${this.port}.conf`);
    args.push(...(this.options.args ?? []));
    this.proc = spawn('redis-server', args, { stdio: 'ignore' });
    await waitFor(() => redisAnswers(this.url), `redis-server on port ${this.port}`);
  }

  /** Kills the server at once (SIGKILL), as a crash would. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  }

  /** Kills the server and starts it again on the same port: empty unless it persists. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** Stops the process (SIGSTOP): connections stay open and nothing answers, as a hung server. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  async destroy(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Redis Cluster of `masters` masters (no replicas) on loopback ports, made by the test. */
export class OwnCluster {
  readonly nodes: OwnRedis[];

  constructor(masters = 3) {
    this.nodes = Array.from({ length: masters }, () => new OwnRedis({ cluster: true, persist: false }));
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.start()));
    await run('redis-cli', [
      '--cluster',
      'create',
      ...this.nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitFor(async () => {
      const info = await Promise.all(
        this.nodes.map(async (n) => (await run('redis-cli', ['-p', String(n.port), 'cluster', 'info'])).stdout),
      );
      return info.every((i) => i.includes('cluster_state:ok'));
    }, 'the cluster to be ok');
  }

  /** The node that serves `key`'s slot. */
  async nodeOf(key: string): Promise<OwnRedis> {
    const slot = Number((await run('redis-cli', ['-p', String(this.nodes[0]?.port), 'cluster', 'keyslot', key])).stdout.trim());
    const { stdout } = await run('redis-cli', ['-p', String(this.nodes[0]?.port), 'cluster', 'slots']);
    // Each range prints: start, end, then the master's ip and port (one value per line).
    const lines = stdout.split('\n').map((l) => l.trim());
    for (let i = 0; i + 3 < lines.length; i += 1) {
      const start = Number(lines[i]);
      const end = Number(lines[i + 1]);
      const port = Number(lines[i + 3]);
      if (lines[i + 2] === '127.0.0.1' && slot >= start && slot <= end) {
        const node = this.nodes.find((n) => n.port === port);
        if (node) return node;
      }
    }
    throw new Error(`no node serves slot ${slot}`);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.destroy()));
  }
}

/**
 * A TCP relay on a loopback port to a server of the test's: clients keep one address while the
 * test moves it to another server (a failover), dropping every connection open at the move.
 */
export class Relay {
  readonly port = freePort();
  readonly url = `redis://127.0.0.1:${this.port}`;
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;

  constructor(private target: number) {}

  async start(): Promise<void> {
    this.server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.target });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server?.listen(this.port, '127.0.0.1', resolve));
  }

  /** Sends every new connection to `port`, and drops those open now. */
  moveTo(port: number): void {
    this.target = port;
    for (const s of this.sockets) s.destroy();
  }

  async destroy(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
