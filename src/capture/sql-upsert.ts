/**
 * Reads the upsert TypeORM is about to run (`INSERT ... ON CONFLICT (...) DO UPDATE` on
 * PostgreSQL, `INSERT ... ON DUPLICATE KEY UPDATE` on MySQL / MariaDB): its table, columns and
 * VALUES rows, so that the rows it may update can be read before it runs. Conservative: a
 * statement it does not fully understand gives a reason instead of a guess.
 */
import { IDENTIFIER, scan, splitPath, TABLE, type Group, type ParameterStyle, type Placeholder } from './sql-scan';

/** One value of a VALUES row, as far as it can be known before the statement runs. */
export type UpsertValue =
  | { readonly kind: 'parameter'; readonly value: unknown }
  /** A number or quoted string, as written. */
  | { readonly kind: 'literal'; readonly sql: string }
  | { readonly kind: 'null' }
  | { readonly kind: 'default' }
  /** Anything else (a function call, a cast): its value is not known. */
  | { readonly kind: 'expression'; readonly sql: string };

/** An `INSERT ... VALUES` that updates the rows it conflicts with. */
export interface UpsertStatement {
  /** The table as the statement writes it (escaped, maybe schema-qualified). */
  readonly table: string;
  /** The table's path unescaped, schema first when given. */
  readonly tablePath: readonly string[];
  /** The inserted columns, unescaped. */
  readonly columns: readonly string[];
  /** The VALUES rows, one value per column. */
  readonly rows: readonly (readonly UpsertValue[])[];
  /** PostgreSQL: the ON CONFLICT target's columns. MySQL: undefined (any unique key conflicts). */
  readonly target: readonly string[] | undefined;
  /** PostgreSQL: the target's index predicate (`ON CONFLICT (...) WHERE ...`), if any. */
  readonly predicate: string | undefined;
}

const LEADING_INSERT = /^\s*(?:\/\*[\s\S]*?\*\/\s*)*INSERT\s/i;
const UPDATES = /\sON\s+CONFLICT\s[\s\S]*\sDO\s+UPDATE\s|\sON\s+DUPLICATE\s+KEY\s+UPDATE\s/i;
const WHOLE_IDENTIFIER = new RegExp(String.raw`^${IDENTIFIER}$`);

/**
 * True when `sql` may be an upsert that updates rows: a cheap test of every statement before
 * {@link parseUpsert} (an INSERT, then the keywords).
 */
export function isUpsert(sql: string): boolean {
  return LEADING_INSERT.test(sql) && UPDATES.test(sql);
}

/** Splits an upsert; a string says why it cannot be used. */
export function parseUpsert(
  sql: string,
  parameters: readonly unknown[] | undefined,
  style: ParameterStyle,
): UpsertStatement | string {
  const scanned = scan(sql, style);
  if (typeof scanned === 'string') return scanned;
  const { masked, placeholders, groups } = scanned;
  const upper = masked.toUpperCase();
  const head = /^\s*INSERT\s+INTO\s+/.exec(upper);
  if (!head) return 'not an INSERT INTO';
  const columnList = groups.find((g) => g.at >= head[0].length);
  if (!columnList) return 'no column list';
  const table = sql.slice(head[0].length, columnList.at).trim();
  if (!TABLE.test(table)) return `table ${JSON.stringify(table)} is not a plain table name`;
  const columns: string[] = [];
  for (const item of items(sql, columnList, style)) {
    const name = sql.slice(item.at, item.end).trim();
    if (!WHOLE_IDENTIFIER.test(name)) return `column ${JSON.stringify(name)} is not a plain column name`;
    columns.push(...splitPath(name));
  }
  const values = /^\s*VALUES\s*/.exec(upper.slice(columnList.end));
  if (!values) return 'not an INSERT ... VALUES';
  const rows: UpsertValue[][] = [];
  let at = columnList.end + values[0].length;
  for (;;) {
    const group = groups.find((g) => g.at === at);
    if (!group) return 'a VALUES row is not a parenthesized list';
    const row: UpsertValue[] = [];
    for (const item of items(sql, group, style)) {
      const value = valueOf(sql, item, placeholders, parameters ?? []);
      if (typeof value === 'string') return value;
      row.push(value);
    }
    if (row.length !== columns.length) return `a VALUES row has ${row.length} values for ${columns.length} columns`;
    rows.push(row);
    const next = /^\s*(,?)\s*/.exec(upper.slice(group.end)) as RegExpExecArray;
    at = group.end + next[0].length;
    if (!next[1]) break;
  }
  const rest = upper.slice(at);
  const duplicate = /^(?:AS\s+\S+\s+)?ON\s+DUPLICATE\s+KEY\s+UPDATE\s/.exec(rest);
  if (duplicate) return { table, tablePath: splitPath(table), columns, rows, target: undefined, predicate: undefined };
  const conflict = /^ON\s+CONFLICT\s*/.exec(rest);
  if (!conflict) return 'neither ON CONFLICT nor ON DUPLICATE KEY UPDATE follows its VALUES';
  const targetList = groups.find((g) => g.at === at + conflict[0].length);
  if (!targetList) return 'its ON CONFLICT names no column list (ON CONSTRAINT?)';
  const target: string[] = [];
  for (const item of items(sql, targetList, style)) {
    const name = sql.slice(item.at, item.end).trim();
    if (!WHOLE_IDENTIFIER.test(name)) return `its ON CONFLICT target ${JSON.stringify(name)} is not a plain column`;
    target.push(...splitPath(name));
  }
  const after = upper.slice(targetList.end);
  const doUpdate = /\sDO\s+UPDATE\s/.exec(` ${after}`);
  if (!doUpdate) return 'its ON CONFLICT does not DO UPDATE';
  const between = sql.slice(targetList.end, targetList.end + doUpdate.index).trim();
  let predicate: string | undefined;
  if (between) {
    if (!/^WHERE\s/i.test(between)) return `unexpected ${JSON.stringify(between)} after its ON CONFLICT target`;
    const from = targetList.end;
    const to = targetList.end + doUpdate.index;
    if (placeholders.some((p) => p.at >= from && p.end <= to)) return 'its ON CONFLICT predicate takes parameters';
    predicate = between.slice(5).trim();
  }
  return { table, tablePath: splitPath(table), columns, rows, target, predicate };
}

/** The comma-separated items inside `group` (a parenthesized span), trimmed spans of `sql`. */
function items(sql: string, group: Group, style: ParameterStyle): Group[] {
  const from = group.at + 1;
  const inner = sql.slice(from, group.end - 1);
  // Scanned again on its own: nested parentheses and quoted commas are masked at this level.
  const scanned = scan(inner, style);
  const masked = typeof scanned === 'string' ? inner : scanned.masked;
  const out: Group[] = [];
  let start = 0;
  for (let i = 0; i <= masked.length; i += 1) {
    if (i < masked.length && masked[i] !== ',') continue;
    const text = inner.slice(start, i);
    const lead = text.length - text.trimStart().length;
    out.push({ at: from + start + lead, end: from + start + text.trimEnd().length });
    start = i + 1;
  }
  return out;
}

function valueOf(
  sql: string,
  item: Group,
  placeholders: readonly Placeholder[],
  parameters: readonly unknown[],
): UpsertValue | string {
  const text = sql.slice(item.at, item.end);
  const placeholder = placeholders.find((p) => p.at === item.at && p.end === item.end);
  if (placeholder) {
    if (placeholder.index >= parameters.length) {
      return `parameter ${placeholder.index + 1} is missing (${parameters.length} given)`;
    }
    return { kind: 'parameter', value: parameters[placeholder.index] };
  }
  if (/^DEFAULT$/i.test(text)) return { kind: 'default' };
  if (/^NULL$/i.test(text)) return { kind: 'null' };
  if (/^[+-]?\d+(?:\.\d+)?$/.test(text) || /^'(?:[^'\\]|''|\\.)*'$/s.test(text)) return { kind: 'literal', sql: text };
  return { kind: 'expression', sql: text };
}

const INSERT_TABLE = new RegExp(
  String.raw`^\s*(?:\/\*[\s\S]*?\*\/\s*)*INSERT\s+(?:(?:IGNORE|LOW_PRIORITY|HIGH_PRIORITY|DELAYED)\s+)*(?:INTO\s+)?(${IDENTIFIER}(?:\.${IDENTIFIER})*)`,
  'i',
);

/** The table path of an INSERT, read without parsing the rest (a cheap test of whose it is); [] if none. */
export function upsertTable(sql: string): string[] {
  const m = INSERT_TABLE.exec(sql);
  return m?.[1] ? splitPath(m[1]) : [];
}
