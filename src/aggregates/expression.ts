/**
 * The expression grammar of aggregates: arithmetic over a child's property names.
 *
 *   expr    := term (('+' | '-') term)*
 *   term    := unary (('*' | '/') unary)*
 *   unary   := '-' unary | primary
 *   primary := number | name | '(' expr ')'
 *   name    := ident ('.' ident)*        (a property path; embedded columns use dots)
 *   number  := digits ('.' digits)?
 *
 * Nothing else is accepted (no function calls, quotes, comments, `;`), so the SQL made from an
 * expression holds only quoted column names, numbers and operators.
 */

/** A parsed expression. Positions are 1-based offsets into the source text. */
export type Expr =
  | { readonly kind: 'number'; readonly value: string; readonly position: number }
  | { readonly kind: 'name'; readonly name: string; readonly position: number }
  | { readonly kind: 'neg'; readonly operand: Expr; readonly position: number }
  | {
      readonly kind: 'binary';
      readonly op: '+' | '-' | '*' | '/';
      readonly left: Expr;
      readonly right: Expr;
      readonly position: number;
    };

/** An expression outside the grammar, with the 1-based position of the offending character. */
export class ExpressionError extends Error {
  constructor(
    readonly position: number,
    readonly reason: string,
  ) {
    super(`${reason} at position ${position}`);
    this.name = 'ExpressionError';
  }
}

/** Longest expression accepted; aggregates are short, and this bounds the parser's work. */
export const MAX_EXPRESSION_LENGTH = 1000;
/** Deepest parenthesis nesting accepted, so a hostile expression cannot exhaust the stack. */
const MAX_DEPTH = 64;

type Token =
  | { readonly type: 'number'; readonly text: string; readonly position: number }
  | { readonly type: 'name'; readonly text: string; readonly position: number }
  | { readonly type: 'op'; readonly text: '+' | '-' | '*' | '/' | '(' | ')'; readonly position: number }
  | { readonly type: 'end'; readonly text: ''; readonly position: number };

const NAME = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/y;
const NUMBER = /\d+(?:\.\d+)?/y;
const OPS = new Set(['+', '-', '*', '/', '(', ')']);

function describeBad(ch: string): string {
  if (ch === "'" || ch === '"' || ch === '`') return `quotes are not allowed (found ${ch})`;
  if (ch === ';') return '";" is not allowed';
  if (ch === '%') return 'the operator "%" is not allowed (only + - * /)';
  return `unexpected character ${JSON.stringify(ch)} (allowed: property names, numbers, + - * / and parentheses)`;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r') {
      i += 1;
      continue;
    }
    if (text.startsWith('--', i) || text.startsWith('/*', i)) throw new ExpressionError(i + 1, 'comments are not allowed');
    if (OPS.has(ch)) {
      tokens.push({ type: 'op', text: ch as '+', position: i + 1 });
      i += 1;
      continue;
    }
    NUMBER.lastIndex = i;
    const number = NUMBER.exec(text);
    if (number) {
      const end = i + number[0].length;
      if (end < text.length && /[A-Za-z_.]/.test(text[end] as string)) {
        throw new ExpressionError(end + 1, `malformed number ${JSON.stringify(text.slice(i, end + 1))}`);
      }
      tokens.push({ type: 'number', text: number[0], position: i + 1 });
      i = end;
      continue;
    }
    NAME.lastIndex = i;
    const name = NAME.exec(text);
    if (name) {
      const end = i + name[0].length;
      let next = end;
      while (next < text.length && /\s/.test(text[next] as string)) next += 1;
      if (text[next] === '(') throw new ExpressionError(i + 1, `function calls are not allowed (found ${name[0]}(...))`);
      tokens.push({ type: 'name', text: name[0], position: i + 1 });
      i = end;
      continue;
    }
    throw new ExpressionError(i + 1, describeBad(ch));
  }
  tokens.push({ type: 'end', text: '', position: text.length + 1 });
  return tokens;
}

/** Parses an aggregate expression; an {@link ExpressionError} says what is wrong and where. */
export function parseExpression(text: string): Expr {
  if (text.length > MAX_EXPRESSION_LENGTH) {
    throw new ExpressionError(MAX_EXPRESSION_LENGTH + 1, `expression longer than ${MAX_EXPRESSION_LENGTH} characters`);
  }
  const tokens = tokenize(text);
  let at = 0;
  const peek = (): Token => tokens[at] as Token;
  const next = (): Token => tokens[at++] as Token;
  const unexpected = (t: Token): ExpressionError =>
    t.type === 'end'
      ? new ExpressionError(t.position, text.trim() === '' ? 'empty expression' : 'unexpected end of expression')
      : new ExpressionError(t.position, `unexpected ${JSON.stringify(t.text)}`);

  const expr = (depth: number): Expr => {
    let left = term(depth);
    for (let t = peek(); t.type === 'op' && (t.text === '+' || t.text === '-'); t = peek()) {
      next();
      left = { kind: 'binary', op: t.text, left, right: term(depth), position: t.position };
    }
    return left;
  };
  const term = (depth: number): Expr => {
    let left = unary(depth);
    for (let t = peek(); t.type === 'op' && (t.text === '*' || t.text === '/'); t = peek()) {
      next();
      left = { kind: 'binary', op: t.text, left, right: unary(depth), position: t.position };
    }
    return left;
  };
  const unary = (depth: number): Expr => {
    const t = peek();
    if (t.type === 'op' && t.text === '-') {
      next();
      if (depth >= MAX_DEPTH) throw new ExpressionError(t.position, `nesting deeper than ${MAX_DEPTH}`);
      return { kind: 'neg', operand: unary(depth + 1), position: t.position };
    }
    return primary(depth);
  };
  const primary = (depth: number): Expr => {
    const t = next();
    if (t.type === 'number') return { kind: 'number', value: t.text, position: t.position };
    if (t.type === 'name') return { kind: 'name', name: t.text, position: t.position };
    if (t.type === 'op' && t.text === '(') {
      if (depth >= MAX_DEPTH) throw new ExpressionError(t.position, `nesting deeper than ${MAX_DEPTH}`);
      const inner = expr(depth + 1);
      const close = next();
      if (close.type !== 'op' || close.text !== ')') {
        throw close.type === 'end' ? new ExpressionError(t.position, 'unclosed "("') : unexpected(close);
      }
      return inner;
    }
    throw unexpected(t);
  };

  const result = expr(0);
  const rest = peek();
  if (rest.type !== 'end') throw unexpected(rest);
  return result;
}

/** Every property name used in an expression, with its position, in source order. */
export function namesOf(expr: Expr): { name: string; position: number }[] {
  switch (expr.kind) {
    case 'number':
      return [];
    case 'name':
      return [{ name: expr.name, position: expr.position }];
    case 'neg':
      return namesOf(expr.operand);
    case 'binary':
      return [...namesOf(expr.left), ...namesOf(expr.right)];
  }
}

/**
 * SQL text of an expression: each name replaced by `column(name)` (a quoted, qualified column),
 * every operation parenthesized so the database evaluates it as parsed.
 */
export function expressionSql(expr: Expr, column: (name: string, position: number) => string): string {
  switch (expr.kind) {
    case 'number':
      return expr.value;
    case 'name':
      return column(expr.name, expr.position);
    case 'neg':
      return `(-${expressionSql(expr.operand, column)})`;
    case 'binary':
      return `(${expressionSql(expr.left, column)} ${expr.op} ${expressionSql(expr.right, column)})`;
  }
}
