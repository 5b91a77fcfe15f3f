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
 * Each row is a single-row INSERT ... VALUES: an INSERT ... SELECT is a bulk insert to InnoDB,
 * which (innodb_autoinc_lock_mode 1, MariaDB's default) holds the outbox's table-level AUTO-INC
 * lock until the writing statement ends, so a long statement would hold up every other writer.
 */
function bodySql(spec: TriggerSpec, t: TriggerTable, rows: readonly ('OLD' | 'NEW')[]): string {
  const candidates = rows.flatMap((row) =>
    t.marks.map((m) => ({ member: memberSql(m, row), base: String(m.base), type: m.type })),
  );
  // Local variables named so no column can be mistaken for them.
  const name = (i: number): string => `coalesce_m${i + 1}`;
  const lines = candidates.map(
    (c, i) => `${i === 0 ? 'SET' : '   '} ${name(i)} = ${c.member}${i === candidates.length - 1 ? ';' : ','}`,
  );
  candidates.forEach((c, i) => {
    // A parent the row pointed at and still points at (or points at twice) is marked once.
    const earlier = candidates.flatMap((e, j) => (j < i && e.type === c.type ? [`NOT (${name(i)} <=> ${name(j)})`] : []));
    lines.push(
      `IF ${[`${name(i)} IS NOT NULL`, ...earlier].join(' AND ')} THEN`,
      `  INSERT INTO ${spec.outbox} (namespace, member, increment, base) VALUES (${quoteMysqlLiteral(spec.namespace)}, ${name(i)}, 1, ${c.base});`,
      'END IF;',
    );
  });
  const declare = `DECLARE ${candidates.map((_, i) => name(i)).join(', ')} TEXT CHARACTER SET utf8mb4;`;
  if (rows.length === 1) return ['BEGIN', `  ${declare}`, ...lines.map((l) => `  ${l}`), 'END'].join('\n');
  const same = t.columns
    .map((c) => `CAST(OLD.${quoteMysqlIdent(c)} AS BINARY) <=> CAST(NEW.${quoteMysqlIdent(c)} AS BINARY)`)
    .join('\n      AND ');
  return ['BEGIN', `  ${declare}`, `  IF NOT (${same}) THEN`, ...lines.map((l) => `    ${l}`), '  END IF;', 'END'].join('\n');
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
