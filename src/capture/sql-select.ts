/**
 * Turns the UPDATE or DELETE that TypeORM is about to run into a SELECT of the same rows, so the
 * subscriber can read the keys of rows that an event does not name (QueryBuilder writes by
 * criteria, orphaned children). Conservative: a statement it does not fully understand gives a
 * reason instead of a guess.
 */

/** An UPDATE or DELETE split so that the rows it picks can be read by a SELECT. */
export interface WriteStatement {
  readonly verb: 'UPDATE' | 'DELETE';
  /** The table as the statement writes it (escaped, maybe schema-qualified). */
  readonly table: string;
  /** The table's path unescaped, schema first when given (`['shop', 'order_line']`). */
  readonly tablePath: readonly string[];
  /** What picks the rows: `WHERE ...` (and ORDER BY / LIMIT on MySQL); empty for every row. */
  readonly filter: string;
  /** The parameters `filter` uses, renumbered from the first. */
  readonly parameters: readonly unknown[];
}

import { find, keyword, scan, splitPath, TABLE, type ParameterStyle, type Placeholder } from './sql-scan';

export type { ParameterStyle } from './sql-scan';

const LEADING_VERB = /^\s*(?:\/\*[\s\S]*?\*\/\s*)*(UPDATE|DELETE)\s/i;
const SET = keyword('SET');
const WHERE = keyword('WHERE');
const ORDER_BY = keyword(String.raw`ORDER\s+BY`);
const LIMIT = keyword('LIMIT');
const RETURNING = keyword('RETURNING');

/** True when `sql` starts with UPDATE or DELETE (a cheap test before {@link parseWrite}). */
export function isWrite(sql: string): boolean {
  return LEADING_VERB.test(sql);
}

/** Splits an UPDATE or DELETE; a string says why it cannot be used. */
export function parseWrite(
  sql: string,
  parameters: readonly unknown[] | undefined,
  style: ParameterStyle,
): WriteStatement | string {
  const scanned = scan(sql, style);
  if (typeof scanned === 'string') return scanned;
  const upper = scanned.masked.toUpperCase();
  const head = /^\s*(UPDATE|DELETE\s+FROM)\s+/.exec(upper);
  if (!head?.[1]) return 'not a single-table UPDATE or DELETE';
  const verb = head[1].startsWith('UPDATE') ? 'UPDATE' : 'DELETE';
  const tableAt = head[0].length;
  let tableEnd: number;
  let filterAt: number;
  if (verb === 'UPDATE') {
    const set = find(upper, SET, tableAt);
    if (set < 0) return 'no SET clause';
    tableEnd = set;
    filterAt = firstOf(upper, [WHERE, ORDER_BY, LIMIT], set);
  } else {
    tableEnd = firstOf(upper, [WHERE, ORDER_BY, LIMIT, RETURNING], tableAt);
    filterAt = tableEnd;
  }
  const table = sql.slice(tableAt, tableEnd).trim();
  if (!TABLE.test(table)) return `table ${JSON.stringify(table)} is not a plain table name`;
  const returning = find(upper, RETURNING, filterAt);
  const filterEnd = returning >= 0 ? returning : sql.length;
  const filter = rewriteFilter(sql, scanned.placeholders, filterAt, filterEnd, parameters ?? [], style);
  if (typeof filter === 'string') return filter;
  return { verb, table, tablePath: splitPath(table), filter: filter.text, parameters: filter.parameters };
}

/** The SELECT of `columns` (already escaped) over the rows `statement` picks, with `lock` (a locking clause, or ''). */
export function selectRows(statement: WriteStatement, columns: readonly string[], lock: string): string {
  const filter = statement.filter ? ` ${statement.filter}` : '';
  // A filter ending in a line comment would swallow the lock clause on its line.
  const locked = lock ? `${filter.includes('--') ? '\n' : ' '}${lock}` : '';
  return `SELECT /* typeorm-coalesce lookup */ ${columns.join(', ')} FROM ${statement.table}${filter}${locked}`;
}

/** Keeps the part of `sql` from `from` to `to`, its parameters renumbered from the first. */
function rewriteFilter(
  sql: string,
  placeholders: readonly Placeholder[],
  from: number,
  to: number,
  parameters: readonly unknown[],
  style: ParameterStyle,
): { text: string; parameters: unknown[] } | string {
  if (from >= to) return { text: '', parameters: [] };
  const used = placeholders.filter((p) => p.at >= from && p.end <= to);
  const out: unknown[] = [];
  let text = '';
  let at = from;
  const renumbered = new Map<number, number>();
  for (const p of used) {
    if (p.index >= parameters.length) return `parameter ${p.index + 1} is missing (${parameters.length} given)`;
    if (style === 'positional') {
      out.push(parameters[p.index]);
      continue;
    }
    let n = renumbered.get(p.index);
    if (n === undefined) {
      out.push(parameters[p.index]);
      n = out.length;
      renumbered.set(p.index, n);
    }
    text += `${sql.slice(at, p.at)}$${n}`;
    at = p.end;
  }
  text += sql.slice(at, to);
  return { text: text.trim(), parameters: out };
}

function firstOf(text: string, patterns: RegExp[], from: number): number {
  const found = patterns.map((p) => find(text, p, from)).filter((at) => at >= 0);
  return found.length > 0 ? Math.min(...found) : text.length;
}
