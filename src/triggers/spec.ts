import { createHash } from 'node:crypto';
import type { IdKind } from '../registry/members';

/**
 * What the trigger SQL of both databases is made from (PostgreSQL in trigger-sql.ts, MySQL and
 * MariaDB in mysql-sql.ts), and the names they give their triggers.
 */

/**
 * The longest trigger or function name: PostgreSQL truncates identifiers past 63 bytes
 * (NAMEDATALEN - 1), MySQL and MariaDB refuse names past 64 characters. Within 63 bytes, both fit.
 */
const MAX_IDENTIFIER_BYTES = 63;

/** One parent a child's row points at: its member prefix, priority base and the child's key column. */
export interface TriggerMark {
  /** The parent type's name, the member prefix. */
  readonly type: string;
  /** How the parent's ids are spelled in members. */
  readonly idKind: IdKind;
  /** The parent type's priority base (used by Redis only when the type has no published policy). */
  readonly base: number;
  /** The child's column holding the parent's id (database name). */
  readonly column: string;
}

/** A child table and the parents its rows point at. */
export interface TriggerTable {
  /** The entity's name, for comments. */
  readonly entity: string;
  /**
   * The table's schema (PostgreSQL) or database (MySQL) when the entity or DataSource names one;
   * else the migration session's search_path or current database decides.
   */
  readonly schema: string | undefined;
  /** The table's name. */
  readonly table: string;
  /** Primary key columns (database names): an UPDATE's old and new rows are paired on them. */
  readonly primary: readonly string[];
  /**
   * The columns the entity maps (database names): a MySQL row trigger compares them to skip rows
   * an UPDATE left unchanged (PostgreSQL compares whole rows).
   */
  readonly columns: readonly string[];
  /** One per parent link of the child. */
  readonly marks: readonly TriggerMark[];
}

/** Everything the triggers of one namespace write into. */
export interface TriggerSpec {
  /** The namespace the rows are for. */
  readonly namespace: string;
  /** The outbox table, quoted and qualified as the library's queries name it. */
  readonly outbox: string;
  /** The child tables to capture. */
  readonly tables: readonly TriggerTable[];
}

/** The statements that create the triggers, and those that drop them. */
export interface TriggerStatements {
  /** Creates (or replaces) the functions and the triggers. */
  readonly up: readonly string[];
  /** Drops them. */
  readonly down: readonly string[];
}

/** Names of a child table's trigger function and triggers. */
export interface TriggerNames {
  /** The trigger function, in the table's schema (PostgreSQL only). */
  readonly fn: string;
  /** The AFTER INSERT, AFTER UPDATE and AFTER DELETE triggers. */
  readonly insert: string;
  readonly update: string;
  readonly delete: string;
}

/**
 * The trigger function's and triggers' names for `table`: `coalesce_<table>_mark`, `_ins`, `_upd`,
 * `_del`. A table name too long for 63 bytes is cut and given a hash of the whole name, so two
 * long names that share a prefix still get names of their own.
 */
export function triggerNames(table: string): TriggerNames {
  const longest = '_mark';
  let base = `coalesce_${table}`;
  if (Buffer.byteLength(base + longest) > MAX_IDENTIFIER_BYTES) {
    const hash = createHash('sha1').update(table).digest('hex').slice(0, 8);
    const room = MAX_IDENTIFIER_BYTES - Buffer.byteLength(`coalesce__${hash}${longest}`);
    base = `coalesce_${cutBytes(table, room)}_${hash}`;
  }
  return { fn: `${base}_mark`, insert: `${base}_ins`, update: `${base}_upd`, delete: `${base}_del` };
}

/** The longest prefix of `s` within `bytes` UTF-8 bytes, never splitting a character. */
function cutBytes(s: string, bytes: number): string {
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch) > bytes) break;
    out += ch;
  }
  return out;
}
