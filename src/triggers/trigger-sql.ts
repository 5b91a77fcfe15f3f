import type { TriggerMark, TriggerNames, TriggerSpec, TriggerStatements, TriggerTable } from './spec';
import { triggerNames } from './spec';

// The PostgreSQL triggers: statement-level, with transition tables. (MySQL/MariaDB: mysql-sql.ts.)

export type { TriggerMark, TriggerNames, TriggerSpec, TriggerStatements, TriggerTable } from './spec';
export { triggerNames } from './spec';

/** A quoted identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A string literal. */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
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
 * skipped). It does not NOTIFY: a notifying transaction takes a database-wide lock at commit,
 * so notifying writers commit one at a time; the relay polls the outbox instead.
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
BEGIN
  IF TG_OP = 'INSERT' THEN
    ${insert(`${NEW}`, [NEW])}
  ELSIF TG_OP = 'DELETE' THEN
    ${insert(`${OLD}`, [OLD])}
  ELSE
    -- Old and new rows paired by primary key: a row whose columns all stayed the same marks nothing.
    ${insert(`${OLD} FULL JOIN ${NEW} ON ${pairs}`, [OLD, NEW], `\n       AND ROW(${OLD}.*)::text IS DISTINCT FROM ROW(${NEW}.*)::text`)}
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
