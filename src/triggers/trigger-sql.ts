import { createHash } from 'node:crypto';
import type { IdKind } from '../registry/members';
import { OUTBOX_CHANNEL } from '../delivery/outbox';

/** The channel the triggers notify, with the namespace as payload, once their outbox rows are written. */

/** PostgreSQL truncates identifiers past 63 bytes (NAMEDATALEN - 1). */
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
  /** The table's schema when the entity or DataSource names one; else the migration session's search_path decides. */
  readonly schema: string | undefined;
  /** The table's name. */
  readonly table: string;
  /** Primary key columns (database names): an UPDATE's old and new rows are paired on them. */
  readonly primary: readonly string[];
  /** One per parent link of the child. */
  readonly marks: readonly TriggerMark[];
}

/** Everything the triggers of one namespace write into. */
export interface TriggerSpec {
  /** The namespace the rows and notifications are for. */
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
  /** The trigger function, in the table's schema. */
  readonly fn: string;
  /** The AFTER INSERT, AFTER UPDATE and AFTER DELETE triggers. */
  readonly insert: string;
  readonly update: string;
  readonly delete: string;
}

/** A quoted identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A string literal. */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
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

/**
 * The member of a parent as SQL, spelled exactly as `canonicalId` spells it: integers in
 * decimal (PostgreSQL's text form of an integer column), uuids lowercase, strings as they are.
 * NULL (no parent) when the key is NULL, or an empty string, which no parent id can be.
 */
function memberSql(mark: TriggerMark, row: string): string {
  const value = `${row}.${quoteIdent(mark.column)}::text`;
  const id = mark.idKind === 'uuid' ? `lower(${value})` : mark.idKind === 'string' ? `NULLIF(${value}, '')` : value;
  return `${quoteLiteral(`${mark.type}:`)} || ${id}`;
}

function qualified(schema: string | undefined, name: string): string {
  return schema === undefined ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** Aliases of the transition tables' rows; unlikely column names, since a column would shadow them. */
const OLD = 'coalesce_old';
const NEW = 'coalesce_new';

/**
 * The trigger function of one child table. One function serves the three statement-level
 * triggers (TG_OP tells which fired): it inserts one outbox row per distinct parent the
 * statement touched (old and new parents of moved rows; rows an UPDATE left unchanged are
 * skipped), then notifies the listeners of the namespace.
 */
function functionSql(spec: TriggerSpec, t: TriggerTable, names: TriggerNames): string {
  const base = (m: TriggerMark): string => `${String(m.base)}::double precision`;
  const values = (rows: readonly string[]): string =>
    rows.flatMap((row) => t.marks.map((m) => `(${memberSql(m, row)}, ${base(m)})`)).join(`,\n${' '.repeat(32)}`);
  const insert = (from: string, rows: readonly string[], where = ''): string =>
    `INSERT INTO ${spec.outbox} (namespace, member, increment, base)
    SELECT DISTINCT ${quoteLiteral(spec.namespace)}, v.member, 1, v.base
      FROM ${from}
     CROSS JOIN LATERAL (VALUES ${values(rows)}) AS v(member, base)
     WHERE v.member IS NOT NULL${where};`;
  const pairs = t.primary.map((c) => `${NEW}.${quoteIdent(c)} = ${OLD}.${quoteIdent(c)}`).join(' AND ');
  const body = `
-- typeorm-coalesce, namespace ${spec.namespace}: marks the parents of ${t.entity.replace(/\s+/g, ' ')} changes.
DECLARE
  marked integer;
BEGIN
  IF TG_OP = 'INSERT' THEN
    ${insert(`${NEW}`, [NEW])}
  ELSIF TG_OP = 'DELETE' THEN
    ${insert(`${OLD}`, [OLD])}
  ELSE
    -- Old and new rows paired by primary key: a row whose columns all stayed the same marks nothing.
    ${insert(`${OLD} FULL JOIN ${NEW} ON ${pairs}`, [OLD, NEW], `\n       AND ROW(${OLD}.*)::text IS DISTINCT FROM ROW(${NEW}.*)::text`)}
  END IF;
  GET DIAGNOSTICS marked = ROW_COUNT;
  IF marked > 0 THEN
    PERFORM pg_notify(${quoteLiteral(OUTBOX_CHANNEL)}, ${quoteLiteral(spec.namespace)});
  END IF;
  RETURN NULL;
END
`;
  // A dollar-quote tag the body does not contain (an entity name could, in theory).
  let tag = '$coalesce$';
  for (let n = 1; body.includes(tag); n += 1) tag = `$coalesce${n}$`;
  return `CREATE OR REPLACE FUNCTION ${qualified(t.schema, names.fn)}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS ${tag}${body}${tag}`;
}

/**
 * The statements that install trigger capture on `spec.tables`, and those that remove it.
 * Re-running them replaces the function and the triggers (a regenerated migration after a
 * change of the children's registration).
 */
export function triggerStatements(spec: TriggerSpec): TriggerStatements {
  const up: string[] = [];
  const down: string[] = [];
  for (const t of spec.tables) {
    const names = triggerNames(t.table);
    const table = qualified(t.schema, t.table);
    const fn = qualified(t.schema, names.fn);
    up.push(functionSql(spec, t, names));
    const triggers = [
      [names.insert, 'INSERT', `NEW TABLE AS ${NEW}`],
      [names.update, 'UPDATE', `OLD TABLE AS ${OLD} NEW TABLE AS ${NEW}`],
      [names.delete, 'DELETE', `OLD TABLE AS ${OLD}`],
    ] as const;
    for (const [name, event, referencing] of triggers) {
      up.push(`DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${table}`);
      // Transition tables allow one event per trigger, hence three triggers on one function.
      up.push(
        `CREATE TRIGGER ${quoteIdent(name)} AFTER ${event} ON ${table} REFERENCING ${referencing} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`,
      );
      down.push(`DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${table}`);
    }
    down.push(`DROP FUNCTION IF EXISTS ${fn}()`);
  }
  return { up, down };
}
