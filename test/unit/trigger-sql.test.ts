import { describe, expect, it } from 'vitest';
import { quoteIdent, triggerNames, triggerStatements } from '../../src/triggers/trigger-sql';

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
