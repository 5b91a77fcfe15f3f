import type { DataSource } from 'typeorm';
import { ConfigError } from '../errors';

/** The SQL dialects the library speaks: PostgreSQL, and MySQL / MariaDB. */
export type DialectName = 'postgres' | 'mysql';

const SUPPORTED = 'postgres, mysql, mariadb';

/** The dialect of a DataSource's driver; a ConfigError naming the driver for any other. */
export function dialectOf(dataSource: DataSource): DialectName {
  const type = (dataSource.options as { type?: string }).type;
  if (type === 'postgres') return 'postgres';
  if (type === 'mysql' || type === 'mariadb') return 'mysql';
  throw new ConfigError(
    `the DataSource's driver "${String(type)}" is not supported: typeorm-coalesce needs one of ${SUPPORTED} (its outbox and SQL are written for them)`,
  );
}

/** Helpers to write one statement for both dialects. */
export interface Sql {
  readonly dialect: DialectName;
  /** The n-th (1-based) bound parameter's placeholder. */
  param(n: number): string;
  /** A comma-separated list of `count` placeholders starting at the `from`-th. */
  params(count: number, from?: number): string;
  /** An identifier, quoted. */
  id(name: string): string;
  /** A table of the DataSource's schema (PostgreSQL) or database (MySQL), quoted. */
  table(name: string): string;
  /** `FOR UPDATE SKIP LOCKED` (MySQL 8, MariaDB 10.6+, PostgreSQL 9.5+). */
  readonly skipLocked: string;
}

/** SQL helpers for `dataSource`. */
export function sqlFor(dataSource: DataSource): Sql {
  const dialect = dialectOf(dataSource);
  const quote =
    dialect === 'postgres' ? (n: string) => `"${n.replace(/"/g, '""')}"` : (n: string) => `\`${n.replace(/`/g, '``')}\``;
  const param = dialect === 'postgres' ? (n: number) => `$${n}` : () => '?';
  const schema = dialect === 'postgres' ? (dataSource.options as { schema?: string }).schema : undefined;
  return {
    dialect,
    param,
    params: (count, from = 1) => Array.from({ length: count }, (_, i) => param(from + i)).join(', '),
    id: quote,
    table: (name) => (schema ? `${quote(schema)}.${quote(name)}` : quote(name)),
    skipLocked: 'FOR UPDATE SKIP LOCKED',
  };
}

const MISSING_TABLE = new Set(['42P01', 'ER_NO_SUCH_TABLE', 1146]);

/** Whether a driver error says a table does not exist (its migration was not run). */
export function isMissingTable(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown; driverError?: { code?: unknown; errno?: unknown } } | null;
  return [e?.code, e?.errno, e?.driverError?.code, e?.driverError?.errno].some((c) => MISSING_TABLE.has(c as string));
}

const MISSING_COLUMN = new Set(['42703', 'ER_BAD_FIELD_ERROR', 1054]);

/** Whether a driver error says a column does not exist (a library migration was not run). */
export function isMissingColumn(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown; driverError?: { code?: unknown; errno?: unknown } } | null;
  return [e?.code, e?.errno, e?.driverError?.code, e?.driverError?.errno].some((c) => MISSING_COLUMN.has(c as string));
}
