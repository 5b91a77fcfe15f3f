/**
 * The lexical part shared by the statement readers (sql-select, sql-upsert): quoted text,
 * comments and parentheses masked out so that keywords are found at the top level only, and
 * the parameters' placeholders located.
 */

/** How a driver writes parameters: `$1` (PostgreSQL) or `?` (MySQL, MariaDB). */
export type ParameterStyle = 'numbered' | 'positional';

/** One parameter placeholder of a statement. */
export interface Placeholder {
  readonly at: number;
  readonly end: number;
  /** Index into the statement's parameters. */
  readonly index: number;
}

/** A parenthesized span at the top level of a statement: `at` is its `(`, `end` just past its `)`. */
export interface Group {
  readonly at: number;
  readonly end: number;
}

/** A statement scanned by {@link scan}. */
export interface Scan {
  /** The statement with quoted text, comments and parenthesized text masked out, same length. */
  readonly masked: string;
  readonly placeholders: readonly Placeholder[];
  /** Its top-level parenthesized spans, in order. */
  readonly groups: readonly Group[];
}

/** One identifier: double-quoted, backquoted or bare. */
export const IDENTIFIER = String.raw`(?:"(?:[^"]|"")+"|\x60(?:[^\x60]|\x60\x60)+\x60|[A-Za-z_][\w$]*)`;
/** A plain table name, maybe schema-qualified. */
export const TABLE = new RegExp(String.raw`^${IDENTIFIER}(?:\.${IDENTIFIER})*$`);

/** A keyword at the top level of masked text (masked quotes and parentheses read as '_'). */
export const keyword = (words: string): RegExp => new RegExp(String.raw`\s${words}(?=[\s_])`, 'g');

/** Where `pattern` (global) first matches `text` from `from`, or -1. */
export function find(text: string, pattern: RegExp, from: number): number {
  pattern.lastIndex = from;
  const m = pattern.exec(text);
  return m ? m.index : -1;
}

/** Masks quoted text, comments and parenthesized text, and finds the parameters; a string says why it cannot. */
export function scan(sql: string, style: ParameterStyle): Scan | string {
  const placeholders: Placeholder[] = [];
  const groups: Group[] = [];
  let opened = 0;
  let masked = '';
  let depth = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === "'" || c === '"' || c === '`') {
      // MySQL strings also take backslash escapes; doubled quotes escape in every dialect.
      let j = i + 1;
      for (;;) {
        if (j >= n) return 'unterminated quoted text';
        const d = sql[j];
        if (d === '\\' && c === "'" && style === 'positional') j += 2;
        else if (d === c && sql[j + 1] === c) j += 2;
        else if (d === c) break;
        else j += 1;
      }
      masked += '_'.repeat(j + 1 - i);
      i = j + 1;
      continue;
    }
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      const stop = end < 0 ? n : end;
      masked += ' '.repeat(stop - i);
      i = stop;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) return 'unterminated comment';
      masked += ' '.repeat(end + 2 - i);
      i = end + 2;
      continue;
    }
    if (style === 'numbered' && c === '$' && !/[\w$]/.test(sql[i - 1] ?? ' ')) {
      const digits = /^\$(\d+)/.exec(sql.slice(i, i + 12));
      if (!digits?.[1]) return 'dollar-quoted text';
      placeholders.push({ at: i, end: i + digits[0].length, index: Number(digits[1]) - 1 });
      masked += '_'.repeat(digits[0].length);
      i += digits[0].length;
      continue;
    }
    if (style === 'positional' && c === '?') {
      placeholders.push({ at: i, end: i + 1, index: placeholders.length });
      masked += '_';
      i += 1;
      continue;
    }
    if (c === '(') {
      if (depth === 0) opened = i;
      depth += 1;
    }
    if (c === ')') {
      depth -= 1;
      if (depth < 0) return 'unbalanced parentheses';
      if (depth === 0) groups.push({ at: opened, end: i + 1 });
    }
    masked += depth > 0 || c === ')' ? '_' : c;
    i += 1;
  }
  if (depth !== 0) return 'unbalanced parentheses';
  return { masked, placeholders, groups };
}

/** The parts of a table path, unescaped (`"shop"."line"` -> `['shop', 'line']`). */
export function splitPath(table: string): string[] {
  const parts: string[] = [];
  const re = new RegExp(IDENTIFIER, 'g');
  for (const m of table.matchAll(re)) {
    const raw = m[0];
    const q = raw[0];
    parts.push(q === '"' || q === '`' ? raw.slice(1, -1).split(`${q}${q}`).join(q) : raw);
  }
  return parts;
}
