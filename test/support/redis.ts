import { createConnection } from 'node:net';
import { Redis } from 'ioredis';
import { redisUrl, suffix } from './db';

/** A plain Redis client on the test server; close it with `quit()`. */
export function redisClient(): Redis {
  return new Redis(redisUrl());
}

/**
 * Records the commands Redis receives that touch `namespace` (via MONITOR, on a raw socket)
 * while `fn` runs, one line each. Commands run inside scripts are left out: their number is the
 * number of round trips made for `namespace`.
 */
export async function monitorNamespace(namespace: string, fn: () => Promise<void>): Promise<string[]> {
  const url = new URL(redisUrl());
  const socket = createConnection({ host: url.hostname, port: Number(url.port || 6379) });
  const lines: string[] = [];
  let buffer = '';
  let ready: () => void = () => undefined;
  const monitoring = new Promise<void>((resolve) => (ready = resolve));
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let at: number;
    while ((at = buffer.indexOf('\r\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      if (line === '+OK') ready();
      else lines.push(line);
    }
  });
  socket.write('MONITOR\r\n');
  await monitoring;
  const marker = `coalesce-monitor-end-${suffix()}`;
  try {
    await fn();
  } finally {
    // Everything sent before this ECHO is on the monitor stream once the ECHO is.
    const client = redisClient();
    await client.echo(marker);
    client.disconnect();
    const until = Date.now() + 5000;
    while (!lines.some((l) => l.includes(marker)) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    socket.destroy();
  }
  const tag = `{${namespace}}`;
  // A line looks like: +1700000000.123456 [0 127.0.0.1:5000] "evalsha" "..." (scripts show "[0 lua]").
  return lines.filter((l) => l.includes(tag) && !/^\+[\d.]+ \[\d+ lua\]/.test(l));
}
