import type { DataSource, MigrationInterface } from 'typeorm';
import type { Coalescer } from '../../src';

/** A migration class, as `coalescer.triggerMigration()` returns one. */
export type Migration = new () => MigrationInterface;

/** Runs a migration's `up` or `down` on a query runner of its own. */
export async function runMigration(ds: DataSource, migration: Migration, direction: 'up' | 'down'): Promise<void> {
  const qr = ds.createQueryRunner();
  try {
    await new migration()[direction](qr);
  } finally {
    await qr.release();
  }
}

/** The query parameter `n` (1-based) in the DataSource's SQL. */
function param(ds: DataSource, n: number): string {
  return ds.options.type === 'postgres' ? `$${n}` : '?';
}

/** The outbox rows of `namespace` written after row `after`, counted per member. */
export async function marksSince(ds: DataSource, namespace: string, after: string): Promise<Record<string, number>> {
  const rows = (await ds.query(
    `SELECT member, count(*) AS n FROM coalesce_outbox WHERE namespace = ${param(ds, 1)} AND id > ${param(ds, 2)} GROUP BY member`,
    [namespace, after],
  )) as { member: string; n: number | string }[];
  return Object.fromEntries(rows.map((r) => [r.member, Number(r.n)]));
}

/** The id of the outbox's last row ('0' when it is empty). */
export async function lastRow(ds: DataSource): Promise<string> {
  const [row] = (await ds.query('SELECT coalesce(max(id), 0) AS id FROM coalesce_outbox')) as { id: number | string }[];
  return String(row?.id ?? 0);
}

/** Pending members with their heat. */
export async function heat(coalescer: Coalescer): Promise<Record<string, number>> {
  return Object.fromEntries((await coalescer.hottest(1000)).map((h) => [h.member, h.heat]));
}
