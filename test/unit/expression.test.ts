import { describe, expect, it } from 'vitest';
import type { DataSource } from 'typeorm';
import { ExpressionError, expressionSql, namesOf, parseExpression, MAX_EXPRESSION_LENGTH } from '../../src/aggregates/expression';
import { rendererOf } from '../../src/db/render';
import { RegistrationError } from '../../src';

const sql = (text: string): string => expressionSql(parseExpression(text), (name) => `c."${name}"`);

function failure(text: string): { position: number; reason: string } {
  try {
    parseExpression(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ExpressionError);
    const e = error as ExpressionError;
    return { position: e.position, reason: e.reason };
  }
  throw new Error(`${JSON.stringify(text)} was accepted`);
}

describe('aggregate expressions', () => {
  it('names, numbers, + - * /, parentheses and unary minus, with precedence', () => {
    expect(sql('qty')).toBe('c."qty"');
    expect(sql('qty * unitPrice')).toBe('(c."qty" * c."unitPrice")');
    expect(sql('a + b * c')).toBe('(c."a" + (c."b" * c."c"))');
    expect(sql('(a + b) * c')).toBe('((c."a" + c."b") * c."c")');
    expect(sql('a - b - c')).toBe('((c."a" - c."b") - c."c")');
    expect(sql('a / 2.5')).toBe('(c."a" / 2.5)');
    expect(sql('-qty')).toBe('(-c."qty")');
    // Never "--" (a SQL comment), however the minus signs are stacked.
    expect(sql('- -qty')).toBe('(-(-c."qty"))');
    expect(sql('a - -1')).toBe('(c."a" - (-1))');
    expect(sql('  price.net\t*\n2 ')).toBe('(c."price.net" * 2)');
    expect(namesOf(parseExpression('a * (b - a)'))).toEqual([
      { name: 'a', position: 1 },
      { name: 'b', position: 6 },
      { name: 'a', position: 10 },
    ]);
  });

  it('rejects everything else, saying what and where (1-based)', () => {
    expect(failure('round(qty)')).toEqual({ position: 1, reason: 'function calls are not allowed (found round(...))' });
    expect(failure('qty * sum (x)')).toEqual({ position: 7, reason: 'function calls are not allowed (found sum(...))' });
    expect(failure("qty * 'x'")).toEqual({ position: 7, reason: "quotes are not allowed (found ')" });
    expect(failure('"qty"')).toEqual({ position: 1, reason: 'quotes are not allowed (found ")' });
    expect(failure('qty; drop table x')).toEqual({ position: 4, reason: '";" is not allowed' });
    expect(failure('qty -- x')).toEqual({ position: 5, reason: 'comments are not allowed' });
    expect(failure('a--1')).toEqual({ position: 2, reason: 'comments are not allowed' });
    expect(failure('qty /* x */')).toEqual({ position: 5, reason: 'comments are not allowed' });
    expect(failure('qty % 2').reason).toMatch(/the operator "%" is not allowed/);
    expect(failure('qty || 1')).toMatchObject({ position: 5 });
    expect(failure('qty = 1')).toMatchObject({ position: 5, reason: expect.stringMatching(/unexpected character "="/) });
    expect(failure('')).toEqual({ position: 1, reason: 'empty expression' });
    expect(failure('   ')).toEqual({ position: 4, reason: 'empty expression' });
    expect(failure('qty *')).toEqual({ position: 6, reason: 'unexpected end of expression' });
    expect(failure('(qty')).toEqual({ position: 1, reason: 'unclosed "("' });
    expect(failure('qty)')).toEqual({ position: 4, reason: 'unexpected ")"' });
    expect(failure('qty price')).toEqual({ position: 5, reason: 'unexpected "price"' });
    expect(failure('1e5')).toMatchObject({ position: 2, reason: expect.stringMatching(/malformed number/) });
    expect(failure('1.2.3')).toMatchObject({ reason: expect.stringMatching(/malformed number/) });
    expect(failure('a.')).toMatchObject({ position: 2 });
    expect(failure('$1')).toMatchObject({ position: 1 });
    expect(failure('qty\u0000')).toMatchObject({ position: 4 });
    expect(failure('x'.repeat(MAX_EXPRESSION_LENGTH + 1)).reason).toMatch(/longer than 1000/);
    expect(failure(`${'('.repeat(100)}1${')'.repeat(100)}`).reason).toMatch(/nesting deeper than 64/);
    expect(failure(`${'- '.repeat(100)}1`).reason).toMatch(/nesting deeper than 64/);
    expect(new ExpressionError(3, 'bad').message).toBe('bad at position 3');
  });

  it('a driver other than PostgreSQL or MySQL/MariaDB is a registration error naming it', () => {
    const stub = (type: string) => ({ options: { type }, driver: { escape: (s: string) => `"${s}"` } }) as unknown as DataSource;
    expect(() => rendererOf(stub('sqlite'), 'parent Order')).toThrow(RegistrationError);
    expect(() => rendererOf(stub('sqlite'), 'parent Order')).toThrow(
      'parent Order: aggregates do not support the "sqlite" driver (supported: postgres, mysql, mariadb)',
    );
    expect(rendererOf(stub('postgres'), 'x').name).toBe('postgres');
    expect(rendererOf(stub('mariadb'), 'x').name).toBe('mysql');
  });

  it('MySQL placeholders follow the text order, whatever order the fragments bound their values in', () => {
    const mysql = rendererOf(
      { options: { type: 'mysql' }, driver: { escape: (s: string) => `\`${s}\`` } } as unknown as DataSource,
      'x',
    );
    const { sql: text, params } = mysql.render((p) => {
      const later = p.value('second');
      const earlier = p.value('first');
      return `a = ${earlier} AND b = ${later} AND c = ${earlier}`;
    });
    expect(text).toBe('a = ? AND b = ? AND c = ?');
    expect(params).toEqual(['first', 'second', 'first']);
  });
});
