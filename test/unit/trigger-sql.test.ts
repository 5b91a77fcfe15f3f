import { describe, expect, it } from 'vitest';
import { quoteIdent, triggerNames, triggerStatements } from '../../src/triggers/trigger-sql';
import { mysqlTriggerStatements, quoteMysqlIdent, quoteMysqlLiteral } from '../../src/triggers/mysql-sql';

const bytes = (s: string): number => Buffer.byteLength(s);

describe('trigger names and statements', () => {
  it('names the function and the triggers after the table', () => {
    expect(triggerNames('shop_order_line')).toEqual({
      fn: 'coalesce_shop_order_line_mark',
      insert: 'coalesce_shop_order_line_ins',
      update: 'coalesce_shop_order_line_upd',
      delete: 'coalesce_shop_order_line_del',
    });
  });

  it('keeps every name within 63 bytes, distinct for long tables that share a prefix, never splitting a character', () => {
    const a = triggerNames(`${'x'.repeat(60)}_a`);
    const b = triggerNames(`${'x'.repeat(60)}_b`);
    const wide = triggerNames('é'.repeat(40));
    for (const names of [a, b, wide]) for (const name of Object.values(names)) expect(bytes(name)).toBeLessThanOrEqual(63);
    expect(a.fn).not.toBe(b.fn);
    expect(wide.fn).toMatch(/^coalesce_(é)+_[0-9a-f]{8}_mark$/);
    // The longest name that fits is kept whole.
    const fits = 'y'.repeat(63 - bytes('coalesce__mark'));
    expect(triggerNames(fits).fn).toBe(`coalesce_${fits}_mark`);
  });

  it('quotes identifiers and literals, qualifies by schema, and drops what it made', () => {
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
    const { up, down } = triggerStatements({
      namespace: 'shop',
      outbox: '"s"."coalesce_outbox"',
      tables: [
        {
          entity: 'Line',
          schema: 's',
          table: 'li"ne',
          primary: ['id'],
          columns: ['id', 'order_id'],
          marks: [{ type: "O'Order", idKind: 'string', base: 0, column: 'order_id' }],
        },
      ],
    });
    expect(up[0]).toContain(`'O''Order:' || NULLIF(coalesce_new."order_id"::text, '')`);
    expect(up[0]).toContain('CREATE OR REPLACE FUNCTION "s"."coalesce_li""ne_mark"()');
    expect(up.filter((s) => s.startsWith('CREATE TRIGGER'))).toHaveLength(3);
    expect(down).toEqual([
      'DROP TRIGGER IF EXISTS "coalesce_li""ne_ins" ON "s"."li""ne"',
      'DROP TRIGGER IF EXISTS "coalesce_li""ne_upd" ON "s"."li""ne"',
      'DROP TRIGGER IF EXISTS "coalesce_li""ne_del" ON "s"."li""ne"',
      'DROP FUNCTION IF EXISTS "s"."coalesce_li""ne_mark"()',
    ]);
  });
});

describe('the PostgreSQL trigger function', () => {
  it('writes the outbox and notifies nobody: a NOTIFY would make writing transactions commit one at a time', () => {
    const { up } = triggerStatements({
      namespace: 'shop',
      outbox: '"coalesce_outbox"',
      tables: [
        {
          entity: 'Line',
          schema: undefined,
          table: 'line',
          primary: ['id'],
          columns: ['id', 'order_id'],
          marks: [{ type: 'Order', idKind: 'int', base: 0, column: 'order_id' }],
        },
      ],
    });
    expect(up[0]).toContain('INSERT INTO "coalesce_outbox" (namespace, member, increment, base)');
    expect(up.join('\n')).not.toMatch(/notify/i);
  });
});

describe('MySQL / MariaDB trigger statements', () => {
  const table = {
    entity: 'Line',
    schema: undefined,
    table: 'li`ne',
    primary: ['id'],
    columns: ['id', 'order_id', 'sku'],
    marks: [
      { type: 'Order', idKind: 'int' as const, base: 0, column: 'order_id' },
      { type: "K'ey\\", idKind: 'string' as const, base: 2e12, column: 'key' },
      { type: 'U', idKind: 'uuid' as const, base: 0, column: 'u' },
    ],
  };
  const spec = { namespace: 'shop', outbox: '`coalesce_outbox`', tables: [table] };

  it('makes three row triggers, replaced in one statement on MariaDB, dropped then made on MySQL', () => {
    const maria = mysqlTriggerStatements(spec, 'mariadb');
    expect(maria.up.map((s) => s.split('\n')[0])).toEqual([
      'CREATE OR REPLACE TRIGGER `coalesce_li``ne_ins` AFTER INSERT ON `li``ne` FOR EACH ROW',
      'CREATE OR REPLACE TRIGGER `coalesce_li``ne_upd` AFTER UPDATE ON `li``ne` FOR EACH ROW',
      'CREATE OR REPLACE TRIGGER `coalesce_li``ne_del` AFTER DELETE ON `li``ne` FOR EACH ROW',
    ]);
    const mysql = mysqlTriggerStatements(spec, 'mysql');
    expect(mysql.up.map((s) => s.split('\n')[0])).toEqual([
      'DROP TRIGGER IF EXISTS `coalesce_li``ne_ins`',
      'CREATE TRIGGER `coalesce_li``ne_ins` AFTER INSERT ON `li``ne` FOR EACH ROW',
      'DROP TRIGGER IF EXISTS `coalesce_li``ne_upd`',
      'CREATE TRIGGER `coalesce_li``ne_upd` AFTER UPDATE ON `li``ne` FOR EACH ROW',
      'DROP TRIGGER IF EXISTS `coalesce_li``ne_del`',
      'CREATE TRIGGER `coalesce_li``ne_del` AFTER DELETE ON `li``ne` FOR EACH ROW',
    ]);
    for (const s of [maria, mysql]) {
      expect(s.down).toEqual([
        'DROP TRIGGER IF EXISTS `coalesce_li``ne_ins`',
        'DROP TRIGGER IF EXISTS `coalesce_li``ne_upd`',
        'DROP TRIGGER IF EXISTS `coalesce_li``ne_del`',
      ]);
    }
  });

  it('spells members as the library does, marks old and new parents of an update once each, and skips unchanged rows', () => {
    const [insert, update, remove] = mysqlTriggerStatements(spec, 'mariadb').up as [string, string, string];
    // A backslash is written in hex, whatever the session's sql_mode makes of one.
    const key = `_utf8mb4 X'${Buffer.from("K'ey\\:").toString('hex')}'`;
    expect(insert).toContain(
      "  SET coalesce_m1 = CONCAT(_utf8mb4'Order:', NEW.`order_id`),\n" +
        `      coalesce_m2 = CONCAT(${key}, NULLIF(CONVERT(NEW.\`key\` USING utf8mb4), '')),\n` +
        "      coalesce_m3 = CONCAT(_utf8mb4'U:', LOWER(CONVERT(NEW.`u` USING utf8mb4)));\n",
    );
    expect(insert).not.toContain('OLD.');
    expect(remove).not.toContain('NEW.');
    const values = (m: number, base: number): string =>
      `INSERT INTO \`coalesce_outbox\` (namespace, member, increment, base) VALUES (_utf8mb4'shop', coalesce_m${m}, 1, ${base});`;
    expect(update).toBe(
      [
        'CREATE OR REPLACE TRIGGER `coalesce_li``ne_upd` AFTER UPDATE ON `li``ne` FOR EACH ROW',
        'BEGIN',
        '  DECLARE coalesce_m1, coalesce_m2, coalesce_m3, coalesce_m4, coalesce_m5, coalesce_m6 TEXT CHARACTER SET utf8mb4;',
        '  IF NOT (CAST(OLD.`id` AS BINARY) <=> CAST(NEW.`id` AS BINARY)',
        '      AND CAST(OLD.`order_id` AS BINARY) <=> CAST(NEW.`order_id` AS BINARY)',
        '      AND CAST(OLD.`sku` AS BINARY) <=> CAST(NEW.`sku` AS BINARY)) THEN',
        "    SET coalesce_m1 = CONCAT(_utf8mb4'Order:', OLD.`order_id`),",
        `        coalesce_m2 = CONCAT(${key}, NULLIF(CONVERT(OLD.\`key\` USING utf8mb4), '')),`,
        "        coalesce_m3 = CONCAT(_utf8mb4'U:', LOWER(CONVERT(OLD.`u` USING utf8mb4))),",
        "        coalesce_m4 = CONCAT(_utf8mb4'Order:', NEW.`order_id`),",
        `        coalesce_m5 = CONCAT(${key}, NULLIF(CONVERT(NEW.\`key\` USING utf8mb4), '')),`,
        "        coalesce_m6 = CONCAT(_utf8mb4'U:', LOWER(CONVERT(NEW.`u` USING utf8mb4)));",
        '    IF coalesce_m1 IS NOT NULL THEN',
        `      ${values(1, 0)}`,
        '    END IF;',
        '    IF coalesce_m2 IS NOT NULL THEN',
        `      ${values(2, 2e12)}`,
        '    END IF;',
        '    IF coalesce_m3 IS NOT NULL THEN',
        `      ${values(3, 0)}`,
        '    END IF;',
        '    IF coalesce_m4 IS NOT NULL AND NOT (coalesce_m4 <=> coalesce_m1) THEN',
        `      ${values(4, 0)}`,
        '    END IF;',
        '    IF coalesce_m5 IS NOT NULL AND NOT (coalesce_m5 <=> coalesce_m2) THEN',
        `      ${values(5, 2e12)}`,
        '    END IF;',
        '    IF coalesce_m6 IS NOT NULL AND NOT (coalesce_m6 <=> coalesce_m3) THEN',
        `      ${values(6, 0)}`,
        '    END IF;',
        '  END IF;',
        'END',
      ].join('\n'),
    );
    // Single-row inserts only: an INSERT ... SELECT would hold the outbox's AUTO-INC lock to the statement's end.
    for (const sql of [insert, update, remove]) expect(sql).not.toMatch(/INSERT INTO [^\n]* SELECT/);
    expect(quoteMysqlLiteral("it's")).toBe("_utf8mb4'it''s'");
    expect(quoteMysqlIdent('a`b')).toBe('`a``b`');
  });

  it('qualifies the triggers by the table database', () => {
    const { up, down } = mysqlTriggerStatements({ ...spec, tables: [{ ...table, schema: 'other', table: 'line' }] }, 'mysql');
    expect(up[1]).toMatch(/^CREATE TRIGGER `other`.`coalesce_line_ins` AFTER INSERT ON `other`.`line` FOR EACH ROW/);
    expect(down[0]).toBe('DROP TRIGGER IF EXISTS `other`.`coalesce_line_ins`');
  });
});
