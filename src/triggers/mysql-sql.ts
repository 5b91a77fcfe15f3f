import type { TriggerMark, TriggerSpec, TriggerStatements, TriggerTable } from './spec';
import { triggerNames } from './spec';

// The MySQL / MariaDB triggers. Neither has statement-level triggers nor transition tables: each
// changed child row fires a row trigger, which writes one outbox row per parent it points at.

/** Which server the statements are for: MariaDB replaces a trigger in one statement, MySQL cannot. */
export type MysqlFlavor = 'mariadb' | 'mysql';

/** A quoted identifier. */
export function quoteMysqlIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/**
 * A utf8mb4 string literal, whatever the migration session's character set. A value with a
 * backslash is written in hex, since what a backslash means depends on the session's sql_mode.
 */
export function quoteMysqlLiteral(value: string): string {
  if (value.includes('\\')) return `_utf8mb4 X'${Buffer.from(value, 'utf8').toString('hex')}'`;
  return `_utf8mb4'${value.replace(/'/g, "''")}'`;
}

function qualified(schema: string | undefined, name: string): string {
  return schema === undefined ? quoteMysqlIdent(name) : `${quoteMysqlIdent(schema)}.${quoteMysqlIdent(name)}`;
}

/**
 * The member of a parent as SQL, spelled exactly as `canonicalId` spells it: integers in
 * decimal (CONCAT's text of an integer column), uuids lowercase, strings as they are. NULL (no
 * parent) when the key is NULL (CONCAT of a NULL is NULL), or an empty string.
 */
function memberSql(mark: TriggerMark, row: 'OLD' | 'NEW'): string {
  const column = `${row}.${quoteMysqlIdent(mark.column)}`;
  const text = `CONVERT(${column} USING utf8mb4)`;
  const id = mark.idKind === 'uuid' ? `LOWER(${text})` : mark.idKind === 'string' ? `NULLIF(${text}, '')` : column;
  return `CONCAT(${quoteMysqlLiteral(`${mark.type}:`)}, ${id})`;
}

/**
 * The body of one row trigger: one outbox row per distinct parent of the row's old and/or new
 * values. An UPDATE that left every mapped column as it was (byte for byte) writes nothing.
 */
function bodySql(spec: TriggerSpec, t: TriggerTable, rows: readonly ('OLD' | 'NEW')[]): string {
  // UNION, not UNION ALL: a row whose update kept its parent marks that parent once.
  const values = rows
    .flatMap((row) => t.marks.map((m) => [memberSql(m, row), String(m.base)] as const))
    .map(([member, base], i) => (i === 0 ? `SELECT ${member} AS member, ${base} AS base` : `UNION SELECT ${member}, ${base}`))
    .join('\n         ');
  const changed =
    rows.length === 2
      ? `\n   AND NOT (${t.columns
          .map((c) => `CAST(OLD.${quoteMysqlIdent(c)} AS BINARY) <=> CAST(NEW.${quoteMysqlIdent(c)} AS BINARY)`)
          .join('\n            AND ')})`
      : '';
  return `INSERT INTO ${spec.outbox} (namespace, member, increment, base)
SELECT ${quoteMysqlLiteral(spec.namespace)}, v.member, 1, v.base
  FROM (${values}) AS v
 WHERE v.member IS NOT NULL${changed}`;
}

/**
 * The statements that install trigger capture on `spec.tables` on MySQL or MariaDB, and those
 * that remove it: AFTER INSERT, AFTER UPDATE (old and new parents of a moved row) and AFTER
 * DELETE row triggers. Re-running them replaces the triggers (on MariaDB in one statement each).
 */
export function mysqlTriggerStatements(spec: TriggerSpec, flavor: MysqlFlavor): TriggerStatements {
  const up: string[] = [];
  const down: string[] = [];
  for (const t of spec.tables) {
    const names = triggerNames(t.table);
    const triggers = [
      [names.insert, 'INSERT', ['NEW']],
      [names.update, 'UPDATE', ['OLD', 'NEW']],
      [names.delete, 'DELETE', ['OLD']],
    ] as const;
    for (const [name, event, rows] of triggers) {
      // Trigger names are per database: the trigger lives in its table's.
      const trigger = qualified(t.schema, name);
      const drop = `DROP TRIGGER IF EXISTS ${trigger}`;
      if (flavor === 'mysql') up.push(drop);
      up.push(
        `CREATE${flavor === 'mariadb' ? ' OR REPLACE' : ''} TRIGGER ${trigger} AFTER ${event} ON ${qualified(t.schema, t.table)} FOR EACH ROW\n` +
          bodySql(spec, t, rows),
      );
      down.push(drop);
    }
  }
  return { up, down };
}
