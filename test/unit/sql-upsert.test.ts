import { describe, expect, it } from 'vitest';
import { isUpsert, parseUpsert, upsertTable, type UpsertStatement } from '../../src/capture/sql-upsert';

const parsed = (sql: string, params: unknown[], style: 'numbered' | 'positional'): UpsertStatement => {
  const result = parseUpsert(sql, params, style);
  if (typeof result === 'string') throw new Error(result);
  return result;
};

describe('isUpsert / parseUpsert', () => {
  it('tells an upsert that updates from every other statement cheaply', () => {
    expect(isUpsert('INSERT INTO "l"("a") VALUES ($1) ON CONFLICT ( "a" ) DO UPDATE SET "a" = EXCLUDED."a"')).toBe(true);
    expect(isUpsert('insert into `l`(`a`) values (?) on duplicate key update `a` = values(`a`)')).toBe(true);
    expect(isUpsert('INSERT INTO "l"("a") VALUES ($1) ON CONFLICT DO NOTHING')).toBe(false);
    expect(isUpsert('INSERT  IGNORE INTO `l`(`a`) VALUES (?)')).toBe(false);
    expect(isUpsert('INSERT INTO "l"("a") VALUES ($1)')).toBe(false);
    expect(isUpsert('UPDATE "l" SET "a" = 1 WHERE "b" IN (SELECT 1 ON CONFLICT DO UPDATE)')).toBe(false);
  });

  it('reads TypeORM’s PostgreSQL upsert: columns, rows with DEFAULT, target, RETURNING ignored', () => {
    const s = parsed(
      `INSERT INTO "shop"."line"("sku", "qty", "order_id") VALUES ($1, DEFAULT, $2), ($3, $4, $5) ON CONFLICT ( "sku" ) DO UPDATE SET "sku" = EXCLUDED."sku" RETURNING "id", "qty"`,
      ['a', 1, 'b', 3, 2],
      'numbered',
    );
    expect(s).toMatchObject({ table: '"shop"."line"', tablePath: ['shop', 'line'], columns: ['sku', 'qty', 'order_id'] });
    expect(s.target).toEqual(['sku']);
    expect(s.predicate).toBeUndefined();
    expect(s.rows).toEqual([
      [{ kind: 'parameter', value: 'a' }, { kind: 'default' }, { kind: 'parameter', value: 1 }],
      [
        { kind: 'parameter', value: 'b' },
        { kind: 'parameter', value: 3 },
        { kind: 'parameter', value: 2 },
      ],
    ]);
  });

  it('reads TypeORM’s MySQL upsert, literals and computed values', () => {
    const s = parsed(
      "INSERT INTO `line`(`id`, `sku`, `note`, `at`) VALUES (DEFAULT, ?, 'it''s, (x)', NOW()), (7, NULL, 'a\\'b', ?) ON DUPLICATE KEY UPDATE `sku` = VALUES(`sku`)",
      ['s', 9],
      'positional',
    );
    expect(s.target).toBeUndefined();
    expect(s.rows).toEqual([
      [
        { kind: 'default' },
        { kind: 'parameter', value: 's' },
        { kind: 'literal', sql: "'it''s, (x)'" },
        { kind: 'expression', sql: 'NOW()' },
      ],
      [{ kind: 'literal', sql: '7' }, { kind: 'null' }, { kind: 'literal', sql: "'a\\'b'" }, { kind: 'parameter', value: 9 }],
    ]);
  });

  it('keeps the predicate of a partial unique index', () => {
    const s = parsed(
      `INSERT INTO "l"("sku") VALUES ($1) ON CONFLICT ("sku") WHERE "deleted_at" IS NULL DO UPDATE SET "sku" = $1`,
      ['a'],
      'numbered',
    );
    expect(s.predicate).toBe('"deleted_at" IS NULL');
  });

  it('gives a reason for what it does not read', () => {
    const reason = (sql: string) => parseUpsert(sql, ['a', 'b'], 'numbered');
    expect(reason(`INSERT INTO "l"("sku") VALUES ($1) ON CONFLICT ON CONSTRAINT "uq" DO UPDATE SET "sku" = $1`)).toMatch(
      /ON CONSTRAINT/,
    );
    expect(reason(`INSERT INTO "l"("sku") SELECT $1 ON CONFLICT ("sku") DO UPDATE SET "sku" = $1`)).toBe(
      'not an INSERT ... VALUES',
    );
    expect(reason(`INSERT INTO "l"("sku") VALUES ($1, $2) ON CONFLICT ("sku") DO UPDATE SET "sku" = $1`)).toMatch(
      /2 values for 1 columns/,
    );
    expect(reason(`INSERT INTO "l"("sku") VALUES ($3) ON CONFLICT ("sku") DO UPDATE SET "sku" = $1`)).toBe(
      'parameter 3 is missing (2 given)',
    );
    expect(reason(`INSERT INTO "l"("sku") VALUES ($1) ON CONFLICT (lower("sku")) DO UPDATE SET "sku" = $1`)).toMatch(
      /not a plain column/,
    );
    expect(reason(`INSERT INTO "l"("sku") VALUES ($1) ON CONFLICT ("sku") WHERE "x" = $2 DO UPDATE SET "sku" = $1`)).toMatch(
      /predicate takes parameters/,
    );
  });

  it('finds the table of an upsert it cannot read, to name it', () => {
    expect(upsertTable('INSERT INTO "shop"."line"("sku") SELECT 1')).toEqual(['shop', 'line']);
    expect(upsertTable('INSERT IGNORE INTO `line` (`sku`) VALUES (?)')).toEqual(['line']);
    expect(upsertTable('SELECT 1')).toEqual([]);
  });
});
