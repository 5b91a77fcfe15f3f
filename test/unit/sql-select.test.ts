import { describe, expect, it } from 'vitest';
import { isWrite, parseWrite, selectRows, type WriteStatement } from '../../src/capture/sql-select';

const parsed = (sql: string, params: unknown[], style: 'numbered' | 'positional'): WriteStatement => {
  const result = parseWrite(sql, params, style);
  if (typeof result === 'string') throw new Error(result);
  return result;
};

describe('parseWrite / selectRows', () => {
  it('keeps the WHERE of a PostgreSQL UPDATE, renumbers its parameters and drops RETURNING', () => {
    const s = parsed(
      `UPDATE "shop"."line" SET "order_id" = $1, "updated_at" = CURRENT_TIMESTAMP WHERE "sku" = $2 AND ("qty" > $3 OR "sku" = $2) RETURNING "version"`,
      [7, 'a', 3],
      'numbered',
    );
    expect(s).toMatchObject({ verb: 'UPDATE', table: '"shop"."line"', tablePath: ['shop', 'line'] });
    expect(s.filter).toBe(`WHERE "sku" = $1 AND ("qty" > $2 OR "sku" = $1)`);
    expect(s.parameters).toEqual(['a', 3]);
    expect(selectRows(s, ['"order_id" AS "f0"'], 'FOR UPDATE')).toBe(
      `SELECT /* typeorm-coalesce lookup */ "order_id" AS "f0" FROM "shop"."line" WHERE "sku" = $1 AND ("qty" > $2 OR "sku" = $1) FOR UPDATE`,
    );
  });

  it('keeps the WHERE, ORDER BY and LIMIT of a MySQL UPDATE and the parameters after SET', () => {
    const s = parsed(
      "UPDATE `line` SET `sku` = ?, `note` = 'why? it\\'s WHERE' WHERE `id` IN (?, ?) ORDER BY `id` LIMIT 5",
      ['x', 1, 2],
      'positional',
    );
    expect(s.table).toBe('`line`');
    expect(s.filter).toBe('WHERE `id` IN (?, ?) ORDER BY `id` LIMIT 5');
    expect(s.parameters).toEqual([1, 2]);
  });

  it('reads DELETE with and without WHERE, and skips a leading comment', () => {
    expect(parsed('/* bulk */ DELETE FROM "line" WHERE "order_id" = $1', [4], 'numbered')).toMatchObject({
      verb: 'DELETE',
      table: '"line"',
      filter: 'WHERE "order_id" = $1',
      parameters: [4],
    });
    expect(parsed('DELETE FROM `line`', [], 'positional')).toMatchObject({ filter: '', parameters: [] });
  });

  it('does not take keywords inside quoted text, comments or subqueries for clauses', () => {
    const s = parsed(
      `UPDATE "line" SET "sku" = 'x WHERE y' WHERE "id" IN (SELECT "id" FROM "line" WHERE "qty" = $2) -- WHERE nothing\n`,
      ['x', 5],
      'numbered',
    );
    expect(s.filter).toBe(`WHERE "id" IN (SELECT "id" FROM "line" WHERE "qty" = $1) -- WHERE nothing`);
    expect(s.parameters).toEqual([5]);
  });

  it('gives a reason for what it does not understand', () => {
    expect(parseWrite(`WITH x AS (SELECT 1) UPDATE "line" SET "a" = 1`, [], 'numbered')).toBe(
      'not a single-table UPDATE or DELETE',
    );
    expect(parseWrite(`UPDATE "line" SET "a" = $$x$$ WHERE "id" = $1`, [1], 'numbered')).toBe('dollar-quoted text');
    expect(parseWrite(`UPDATE "line" SET "a" = 'x WHERE "id" = $1`, [1], 'numbered')).toBe('unterminated quoted text');
    expect(parseWrite(`UPDATE "line" SET "a" = 1 WHERE "id" = $3`, [1], 'numbered')).toBe('parameter 3 is missing (1 given)');
    expect(parseWrite(`UPDATE "line" l, "other" o SET l."a" = 1`, [], 'numbered')).toMatch(/is not a plain table name/);
    expect(parseWrite(`SELECT 1`, [], 'numbered')).toBe('not a single-table UPDATE or DELETE');
  });

  it('tells writes from everything else cheaply', () => {
    expect(isWrite('UPDATE "x" SET a = 1')).toBe(true);
    expect(isWrite('/* c */ delete from x')).toBe(true);
    expect(isWrite('SELECT /* typeorm-coalesce lookup */ 1')).toBe(false);
    expect(isWrite('INSERT INTO x VALUES (1)')).toBe(false);
  });
});
