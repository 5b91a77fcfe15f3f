import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Column, CreateDateColumn, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { avg, count, max, min, RegistrationError, sum, type AggregateSpec } from '../../src';
import { compileAggregates } from '../../src/aggregates/compile';
import { ExpressionError, parseExpression } from '../../src/aggregates/expression';
import { columnType, expressionType, type ValueType } from '../../src/aggregates/types';
import { createTestDb, DIALECTS, type Dialect, type TestDb } from '../support';

// Parent columns of every kind an aggregate may be written to; the same declarations on both
// databases, whose defaults differ (timestamp: 6 digits of seconds on PostgreSQL, 0 on MariaDB).
@Entity({ name: 'ty_parent' })
class TyParent {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'int', nullable: true }) int!: number;
  @Column({ type: Number, nullable: true }) num!: number;
  @Column({ type: 'integer', nullable: true }) integer!: number;
  @Column({ type: 'bigint', nullable: true }) big!: string;
  @Column({ type: 'decimal', precision: 12, scale: 2, nullable: true }) dec2!: string;
  @Column({ type: 'numeric', precision: 14, scale: 4, nullable: true }) dec4!: string;
  @Column({ type: 'decimal', precision: 10, nullable: true }) dec0!: string;
  @Column({ type: 'decimal', nullable: true }) decAny!: string;
  // TypeORM writes a scale only beside a precision: the table has the database's default.
  @Column({ type: 'decimal', scale: 2, nullable: true }) decScaleOnly!: string;
  @Column({ type: 'float', nullable: true }) float!: number;
  @Column({ type: 'double precision', nullable: true }) double!: number;
  @Column({ type: 'real', nullable: true }) real!: number;
  @Column({ type: 'varchar', length: 40, nullable: true }) v40!: string;
  @Column({ type: 'varchar', length: 10, nullable: true }) v10!: string;
  @Column({ type: String, nullable: true }) str!: string;
  @Column({ type: 'text', nullable: true }) text!: string;
  @Column({ type: 'char', length: 40, nullable: true }) char40!: string;
  @Column({ type: 'timestamp', nullable: true }) ts!: Date;
  @Column({ type: 'timestamp', precision: 0, nullable: true }) ts0!: Date;
  @Column({ type: 'timestamp', precision: 3, nullable: true }) ts3!: Date;
  @Column({ type: Date, precision: 6, nullable: true }) date6!: Date;
  @Column({ type: 'date', nullable: true }) day!: string;
  @Column({ type: 'time', nullable: true }) time!: string;
  @Column({ type: 'boolean', nullable: true }) flag!: boolean;
  @Column({ type: 'uuid', nullable: true }) uid!: string;
  @Column({ type: 'simple-enum', enum: ['a', 'b'], nullable: true }) choice!: string;
}

// Child columns of every kind an aggregate may read.
@Entity({ name: 'ty_line' })
class TyLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ name: 'parent_id', type: 'int' }) parentId!: number;
  @ManyToOne(() => TyParent)
  @JoinColumn({ name: 'parent_id' })
  parent?: TyParent;
  @Column({ type: 'int' }) qty!: number;
  @Column({ type: 'decimal', precision: 12, scale: 2 }) price!: string;
  @Column({ type: 'decimal', nullable: true }) amountAny!: string;
  @Column({ type: 'double precision' }) ratio!: number;
  @Column({ type: 'varchar', length: 40 }) sku!: string;
  @Column({ type: 'text' }) note!: string;
  @CreateDateColumn() createdAt!: Date;
  @Column({ type: 'timestamp', precision: 0, nullable: true }) at0!: Date;
  @Column({ type: 'date', nullable: true }) day!: string;
  @Column({ type: 'time', nullable: true }) time!: string;
  @Column({ type: 'boolean', default: false }) flag!: boolean;
  @Column({ type: 'uuid', nullable: true }) uid!: string;
  @Column({ type: 'simple-json', nullable: true }) doc!: string;
  @Column({ type: 'simple-enum', enum: ['a', 'b'], nullable: true }) choice!: string;
}

// Types only one database has.
@Entity({ name: 'ty_pg' })
class TyPg {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'int4', nullable: true }) int4!: number;
  @Column({ type: 'timestamptz', nullable: true }) tstz!: Date;
  @Column({ type: 'timestamp with time zone', precision: 3, nullable: true }) tstz3!: Date;
  @Column({ type: 'timestamp', nullable: true }) ts!: Date;
  @Column({ type: 'character varying', length: 20, nullable: true }) cv20!: string;
  @Column({ type: 'jsonb', nullable: true }) doc!: object;
  @Column({ type: 'int', array: true, nullable: true }) ints!: number[];
}
@Entity({ name: 'ty_pg_line' })
class TyPgLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @ManyToOne(() => TyPg)
  @JoinColumn({ name: 'parent_id' })
  parent?: TyPg;
  @Column({ type: 'timestamptz', nullable: true }) tstz!: Date;
  @Column({ type: 'timestamp', nullable: true }) ts!: Date;
  @Column({ type: 'jsonb', nullable: true }) doc!: object;
  @Column({ type: 'int', array: true, nullable: true }) ints!: number[];
}
@Entity({ name: 'ty_my' })
class TyMy {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'mediumint', nullable: true }) medium!: number;
  @Column({ type: 'datetime', nullable: true }) dt!: Date;
  @Column({ type: 'datetime', precision: 6, nullable: true }) dt6!: Date;
  @Column({ type: 'timestamp', precision: 6, nullable: true }) ts6!: Date;
  @Column({ type: 'longtext', nullable: true }) long!: string;
  @Column({ type: 'json', nullable: true }) doc!: object;
  @Column({ type: 'fixed', precision: 8, scale: 3, nullable: true }) fixed!: string;
}
@Entity({ name: 'ty_my_line' })
class TyMyLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @ManyToOne(() => TyMy)
  @JoinColumn({ name: 'parent_id' })
  parent?: TyMy;
  @Column({ type: 'mediumint', nullable: true }) medium!: number;
  @Column({ type: 'datetime', precision: 6, nullable: true }) dt6!: Date;
  @Column({ type: 'timestamp', precision: 6, nullable: true }) ts6!: Date;
  @Column({ type: 'fixed', precision: 8, scale: 3, nullable: true }) fixed!: string;
  @Column({ type: 'json', nullable: true }) doc!: object;
}

/** What each database makes of the same declaration: [PostgreSQL, MariaDB]. */
const COLUMN_TYPES: Record<string, [ValueType, ValueType]> = {
  int: [
    { family: 'integer', sql: 'integer' },
    { family: 'integer', sql: 'int' },
  ],
  num: [
    { family: 'integer', sql: 'integer' },
    { family: 'integer', sql: 'int' },
  ],
  integer: [
    { family: 'integer', sql: 'integer' },
    { family: 'integer', sql: 'int' },
  ],
  big: [
    { family: 'integer', sql: 'bigint' },
    { family: 'integer', sql: 'bigint' },
  ],
  dec2: [
    { family: 'decimal', sql: 'numeric(12,2)', scale: 2, exact: true },
    { family: 'decimal', sql: 'decimal(12,2)', scale: 2, exact: true },
  ],
  dec4: [
    { family: 'decimal', sql: 'numeric(14,4)', scale: 4, exact: true },
    { family: 'decimal', sql: 'decimal(14,4)', scale: 4, exact: true },
  ],
  dec0: [
    { family: 'decimal', sql: 'numeric(10,0)', scale: 0, exact: true },
    { family: 'decimal', sql: 'decimal(10,0)', scale: 0, exact: true },
  ],
  decAny: [
    { family: 'decimal', sql: 'numeric', scale: undefined, exact: true },
    { family: 'decimal', sql: 'decimal(10,0)', scale: 0, exact: true },
  ],
  decScaleOnly: [
    { family: 'decimal', sql: 'numeric', scale: undefined, exact: true },
    { family: 'decimal', sql: 'decimal(10,0)', scale: 0, exact: true },
  ],
  float: [
    { family: 'float', sql: 'double precision' },
    { family: 'float', sql: 'float' },
  ],
  double: [
    { family: 'float', sql: 'double precision' },
    { family: 'float', sql: 'double' },
  ],
  real: [
    { family: 'float', sql: 'real' },
    { family: 'float', sql: 'double' },
  ],
  v40: [
    { family: 'string', sql: 'varchar(40)', length: 40, padded: false },
    { family: 'string', sql: 'varchar(40)', length: 40, padded: false },
  ],
  str: [
    { family: 'string', sql: 'varchar', length: undefined, padded: false },
    { family: 'string', sql: 'varchar(255)', length: 255, padded: false },
  ],
  text: [
    { family: 'string', sql: 'text', length: undefined, padded: false },
    { family: 'string', sql: 'text', length: 65_535, padded: false },
  ],
  char40: [
    { family: 'string', sql: 'char(40)', length: 40, padded: true },
    { family: 'string', sql: 'char(40)', length: 40, padded: true },
  ],
  ts: [
    { family: 'datetime', sql: 'timestamp(6)', fsp: 6, zoned: false },
    { family: 'datetime', sql: 'timestamp(0)', fsp: 0, zoned: false },
  ],
  ts0: [
    { family: 'datetime', sql: 'timestamp(0)', fsp: 0, zoned: false },
    { family: 'datetime', sql: 'timestamp(0)', fsp: 0, zoned: false },
  ],
  ts3: [
    { family: 'datetime', sql: 'timestamp(3)', fsp: 3, zoned: false },
    { family: 'datetime', sql: 'timestamp(3)', fsp: 3, zoned: false },
  ],
  date6: [
    { family: 'datetime', sql: 'timestamp(6)', fsp: 6, zoned: false },
    { family: 'datetime', sql: 'datetime(6)', fsp: 6, zoned: false },
  ],
  day: [
    { family: 'date', sql: 'date' },
    { family: 'date', sql: 'date' },
  ],
  time: [
    { family: 'time', sql: 'time(6)', fsp: 6, zoned: false },
    { family: 'time', sql: 'time(0)', fsp: 0, zoned: false },
  ],
  flag: [
    { family: 'boolean', sql: 'boolean' },
    { family: 'boolean', sql: 'boolean' },
  ],
  uid: [
    { family: 'other', sql: 'uuid', comparable: false },
    { family: 'other', sql: 'uuid', comparable: true },
  ],
  choice: [
    { family: 'other', sql: 'enum', comparable: false },
    { family: 'other', sql: 'enum', comparable: false },
  ],
};

const CREATED_AT: Record<Dialect, ValueType> = {
  postgres: { family: 'datetime', sql: 'timestamp(6)', fsp: 6, zoned: false },
  mariadb: { family: 'datetime', sql: 'datetime(6)', fsp: 6, zoned: false },
};

describe.each(DIALECTS)('aggregate types on %s', (dialect) => {
  let db: TestDb;
  beforeAll(async () => {
    const own = dialect === 'postgres' ? [TyPg, TyPgLine] : [TyMy, TyMyLine];
    db = await createTestDb(`agg_types_${dialect}`, { dialect, entities: [TyParent, TyLine, ...own], synchronize: true });
  });
  afterAll(async () => {
    await db.destroy();
  });
  const typeOf = (entity: Function, property: string): ValueType =>
    columnType(db.dataSource, db.dataSource.getMetadata(entity).findColumnWithPropertyPathStrict(property)!);
  const compile = (aggregates: Record<string, AggregateSpec>, parent: Function = TyParent) =>
    compileAggregates(db.dataSource, db.dataSource.getMetadata(parent), aggregates);
  const ok = (field: string, spec: AggregateSpec, parent: Function = TyParent): void => {
    expect(() => compile({ [field]: spec }, parent), `${field}: ${spec.kind}(${spec.expression ?? ''})`).not.toThrow();
  };
  const refused = (field: string, spec: AggregateSpec, message: RegExp, parent: Function = TyParent): void => {
    const run = () => compile({ [field]: spec }, parent);
    expect(run).toThrow(RegistrationError);
    expect(run).toThrow(message);
  };
  const pg = dialect === 'postgres';

  it('column types: normalized as TypeORM does for the driver (constructors too), with the database defaults', async () => {
    for (const [property, [onPg, onMaria]] of Object.entries(COLUMN_TYPES)) {
      expect(typeOf(TyParent, property), property).toEqual(pg ? onPg : onMaria);
    }
    // The model agrees with the table the database made: scales, lengths, digits of seconds.
    const table = db.dataSource.getMetadata(TyParent);
    const rows = (await db.dataSource.query(
      `SELECT column_name AS name, numeric_scale AS scale, character_maximum_length AS length, datetime_precision AS fsp
         FROM information_schema.columns WHERE table_schema = ${pg ? '$1' : '?'} AND table_name = 'ty_parent'`,
      [db.schema],
    )) as { name: string; scale: unknown; length: unknown; fsp: unknown }[];
    const inTable = new Map(rows.map((r) => [r.name, r]));
    const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
    for (const column of table.columns) {
      const type = columnType(db.dataSource, column);
      const row = inTable.get(column.databaseName);
      if (type.family === 'decimal') expect(type.scale, column.propertyName).toBe(num(row?.scale));
      if (type.family === 'string') expect(type.length, column.propertyName).toBe(num(row?.length));
      if (type.family === 'datetime' || type.family === 'time') expect(type.fsp, column.propertyName).toBe(num(row?.fsp));
    }
    // TypeORM's CreateDateColumn: timestamp on PostgreSQL (6 by default), datetime(6) on MySQL/MariaDB.
    expect(typeOf(TyLine, 'createdAt')).toEqual(CREATED_AT[dialect]);
    expect(typeOf(TyLine, 'doc')).toEqual({ family: 'string', sql: 'text', length: pg ? undefined : 65_535, padded: false });
    if (pg) {
      expect(typeOf(TyPg, 'int4')).toEqual({ family: 'integer', sql: 'integer' });
      expect(typeOf(TyPg, 'tstz')).toEqual({ family: 'datetime', sql: 'timestamptz(6)', fsp: 6, zoned: true });
      expect(typeOf(TyPg, 'tstz3')).toEqual({ family: 'datetime', sql: 'timestamptz(3)', fsp: 3, zoned: true });
      expect(typeOf(TyPg, 'cv20')).toEqual({ family: 'string', sql: 'varchar(20)', length: 20, padded: false });
      expect(typeOf(TyPg, 'doc')).toEqual({ family: 'other', sql: 'jsonb', comparable: false });
      expect(typeOf(TyPg, 'ints')).toEqual({ family: 'other', sql: 'integer[]', comparable: false });
    } else {
      expect(typeOf(TyMy, 'medium')).toEqual({ family: 'integer', sql: 'mediumint' });
      expect(typeOf(TyMy, 'dt')).toEqual({ family: 'datetime', sql: 'datetime(0)', fsp: 0, zoned: false });
      expect(typeOf(TyMy, 'dt6')).toEqual({ family: 'datetime', sql: 'datetime(6)', fsp: 6, zoned: false });
      expect(typeOf(TyMy, 'long')).toEqual({ family: 'string', sql: 'longtext', length: 4_294_967_295, padded: false });
      expect(typeOf(TyMy, 'doc')).toEqual({ family: 'other', sql: 'json', comparable: false });
      expect(typeOf(TyMy, 'fixed')).toEqual({ family: 'decimal', sql: 'decimal(8,3)', scale: 3, exact: true });
    }
  });

  it('expression types: literals, + - * keep or add scales, / is fractional, a float makes a float', () => {
    const line = db.dataSource.getMetadata(TyLine);
    const of = (text: string): ValueType =>
      expressionType(parseExpression(text), (name) => {
        const column = line.findColumnWithPropertyPathStrict(name)!;
        return { type: columnType(db.dataSource, column), label: `TyLine.${name}` };
      });
    const dec = (scale: number | undefined, exact = true) => expect.objectContaining({ family: 'decimal', scale, exact });
    expect(of('qty')).toEqual(COLUMN_TYPES.int![pg ? 0 : 1]);
    expect(of('2')).toEqual({ family: 'integer', sql: 'integer' });
    expect(of('2.50')).toEqual(dec(2));
    expect(of('qty * 2 - 1')).toMatchObject({ family: 'integer' });
    expect(of('-qty')).toMatchObject({ family: 'integer' });
    expect(of('qty * price')).toEqual(dec(2));
    expect(of('price + 0.125')).toEqual(dec(3));
    expect(of('price * price')).toEqual(dec(4));
    expect(of('price * 1000000000 + 0.01')).toEqual(dec(2));
    expect(of('qty / 2')).toEqual(dec(undefined, false));
    expect(of('(qty / 2) * 100')).toEqual(dec(undefined, false));
    expect(of('qty * ratio')).toMatchObject({ family: 'float' });
    expect(of('ratio / 2')).toMatchObject({ family: 'float' });
    // PostgreSQL's numeric without precision has any scale; MariaDB's decimal is decimal(10,0).
    expect(of('amountAny * qty')).toEqual(pg ? dec(undefined) : dec(0));
    const failure = (text: string): { position: number; reason: string } => {
      try {
        of(text);
      } catch (error) {
        if (error instanceof ExpressionError) return { position: error.position, reason: error.reason };
      }
      throw new Error(`${text}: no error`);
    };
    expect(failure('qty * sku')).toEqual({ position: 7, reason: '"*" needs numeric operands; TyLine.sku is varchar(40)' });
    expect(failure('-createdAt')).toEqual({
      position: 2,
      reason: `"-" needs numeric operands; TyLine.createdAt is ${CREATED_AT[dialect].sql}`,
    });
    expect(failure('(flag + 1)')).toEqual({ position: 2, reason: '"+" needs numeric operands; TyLine.flag is boolean' });
  });

  it('count takes any expression, and writes to integer, decimal and float columns only', () => {
    for (const field of ['int', 'num', 'big', 'dec2', 'dec0', 'decAny', 'float', 'real']) ok(field, count(TyLine));
    for (const expression of ['sku', 'flag', 'doc', 'createdAt', 'uid', 'choice']) ok('int', count(TyLine, expression));
    refused(
      'v40',
      count(TyLine),
      /^aggregate "v40" of TyParent: count\(TyLine\) into TyParent\.v40 \(varchar\(40\)\): count\(\) is an integer, but the column is not numeric; declare TyParent\.v40 as an integer, decimal or float column$/,
    );
    refused('day', count(TyLine, 'sku'), /count\(TyLine, 'sku'\) into TyParent\.day \(date\): .*not numeric/);
  });

  it('sum needs numbers, and a column at least as exact as the sum', () => {
    for (const field of ['int', 'big', 'dec0', 'dec2', 'float']) ok(field, sum(TyLine, 'qty'));
    ok('dec2', sum(TyLine, 'price'));
    ok('dec4', sum(TyLine, 'price'));
    ok('float', sum(TyLine, 'price'));
    ok('dec2', sum(TyLine, 'qty * price'));
    ok('dec4', sum(TyLine, 'price * price'));
    ok('dec2', sum(TyLine, 'price * 1000000000 + 0.01'));
    // A fractional sum (a quotient) or a float one is rounded at a decimal column's scale, not refused.
    ok('dec2', sum(TyLine, 'qty / 2'));
    ok('dec2', sum(TyLine, 'ratio'));
    ok('float', sum(TyLine, 'ratio'));
    const column = pg ? 'integer' : 'int';
    refused(
      'int',
      sum(TyLine, 'price'),
      new RegExp(
        `^aggregate "int" of TyParent: sum\\(TyLine, 'price'\\) into TyParent\\.int \\(${column}\\): TyLine\\.price is ${pg ? 'numeric' : 'decimal'}\\(12,2\\), which the column would round; declare TyParent\\.int as decimal with scale >= 2$`,
      ),
    );
    refused(
      'dec0',
      sum(TyLine, 'qty * price'),
      /'qty \* price' is decimal with scale 2, which the column would round; declare TyParent\.dec0 as decimal with scale >= 2/,
    );
    refused('dec2', sum(TyLine, 'price * price'), /declare TyParent\.dec2 as decimal with scale >= 4/);
    refused('dec2', sum(TyLine, 'price + 0.125'), /declare TyParent\.dec2 as decimal with scale >= 3/);
    refused(
      'int',
      sum(TyLine, 'qty / 2'),
      /is a fractional decimal, which an integer column would round; declare TyParent\.int as decimal \(rounded at its scale\) or float/,
    );
    refused(
      'int',
      sum(TyLine, 'ratio'),
      /TyLine\.ratio is (double precision|double), which an integer column would round; declare TyParent\.int as float \(or decimal, rounded at its scale\)/,
    );
    refused(
      'v40',
      sum(TyLine, 'qty'),
      /but the column is not numeric; declare TyParent\.v40 as an integer, decimal or float column/,
    );
    if (pg) {
      ok('decAny', sum(TyLine, 'price'));
      ok('decAny', sum(TyLine, 'amountAny'));
      refused(
        'dec2',
        sum(TyLine, 'amountAny'),
        /TyLine\.amountAny is numeric, which the column would round; declare TyParent\.dec2 as numeric without precision and scale, or give the child's column a precision and scale/,
      );
    } else {
      refused(
        'decAny',
        sum(TyLine, 'price'),
        /into TyParent\.decAny \(decimal\(10,0\)\): .*declare TyParent\.decAny as decimal with scale >= 2/,
      );
      ok('dec2', sum(TyLine, 'amountAny'));
    }
    refused(
      'dec2',
      sum(TyLine, 'sku'),
      /^aggregate "dec2" of TyParent: sum\(TyLine, 'sku'\) into TyParent\.dec2 \((numeric|decimal)\(12,2\)\): sum\(\) needs a numeric expression; TyLine\.sku is varchar\(40\)$/,
    );
    refused(
      'ts',
      sum(TyLine, 'createdAt'),
      new RegExp(
        `sum\\(\\) needs a numeric expression; TyLine\\.createdAt is ${CREATED_AT[dialect].sql.replace(/[()]/g, '\\$&')}`,
      ),
    );
    refused('int', sum(TyLine, 'flag'), /sum\(\) needs a numeric expression; TyLine\.flag is boolean/);
    refused(
      'dec2',
      sum(TyLine, 'qty * sku'),
      /sum\(TyLine, 'qty \* sku'\) into TyParent\.dec2 \(.*\): "\*" needs numeric operands; TyLine\.sku is varchar\(40\) at position 7/,
    );
  });

  it('avg needs numbers, and a decimal (rounded at its scale) or float column, never an integer one', () => {
    ok('dec2', avg(TyLine, 'qty'));
    ok('dec2', avg(TyLine, 'price'));
    ok('dec0', avg(TyLine, 'price'));
    ok('decAny', avg(TyLine, 'price'));
    ok('float', avg(TyLine, 'price'));
    ok('dec4', avg(TyLine, 'ratio'));
    ok('double', avg(TyLine, 'ratio'));
    refused(
      'int',
      avg(TyLine, 'qty'),
      /avg\(TyLine, 'qty'\) into TyParent\.int \(.*\): avg\(\) is a fractional decimal, which an integer column would round; declare TyParent\.int as decimal \(rounded at its scale\) or float/,
    );
    refused('big', avg(TyLine, 'ratio'), /avg\(\) is (double precision|double), which an integer column would round/);
    refused('v40', avg(TyLine, 'price'), /avg\(\) is a fractional decimal, but the column is not numeric/);
    refused('dec2', avg(TyLine, 'sku'), /avg\(\) needs a numeric expression; TyLine\.sku is varchar\(40\)/);
    refused('dec2', avg(TyLine, 'day'), /avg\(\) needs a numeric expression; TyLine\.day is date/);
  });

  it('min and max: numbers, strings, dates and times, into a column of the same kind that cuts nothing', () => {
    for (const field of ['int', 'big', 'dec0', 'dec2', 'float']) ok(field, max(TyLine, 'qty'));
    ok('dec2', min(TyLine, 'price'));
    ok('float', min(TyLine, 'ratio'));
    ok('dec2', min(TyLine, 'ratio'));
    refused('int', min(TyLine, 'price'), /declare TyParent\.int as decimal with scale >= 2/);
    refused('v40', max(TyLine, 'qty'), /TyLine\.qty is int(eger)?, but the column is not numeric/);
    // Strings: a column at least as long.
    for (const field of ['v40', 'text', 'str', 'char40']) ok(field, max(TyLine, 'sku'));
    refused(
      'v10',
      max(TyLine, 'sku'),
      /^aggregate "v10" of TyParent: max\(TyLine, 'sku'\) into TyParent\.v10 \(varchar\(10\)\): TyLine\.sku is varchar\(40\), which the column would cut; declare TyParent\.v10 with length >= 40$/,
    );
    refused(
      'v40',
      min(TyLine, 'note'),
      pg
        ? /TyLine\.note is text, which the column would cut; declare TyParent\.v40 as text/
        : /declare TyParent\.v40 with length >= 65535/,
    );
    ok('text', min(TyLine, 'note'));
    refused(
      'int',
      max(TyLine, 'sku'),
      /TyLine\.sku is varchar\(40\), but the column is not a string; declare TyParent\.int with length >= 40/,
    );
    // Date-times: the column keeps as many digits of seconds.
    const created = CREATED_AT[dialect].sql;
    ok('date6', max(TyLine, 'createdAt'));
    for (const field of ['ts', 'ts0', 'date6']) ok(field, max(TyLine, 'at0'));
    if (pg) ok('ts', max(TyLine, 'createdAt'));
    else
      refused(
        'ts',
        max(TyLine, 'createdAt'),
        /^aggregate "ts" of TyParent: max\(TyLine, 'createdAt'\) into TyParent\.ts \(timestamp\(0\)\): TyLine\.createdAt is datetime\(6\), whose fractional seconds the column would cut; declare TyParent\.ts with precision: 6$/,
      );
    refused(
      'ts0',
      max(TyLine, 'createdAt'),
      /whose fractional seconds the column would cut; declare TyParent\.ts0 with precision: 6/,
    );
    refused('ts3', min(TyLine, 'createdAt'), /into TyParent\.ts3 \(timestamp\(3\)\): .*declare TyParent\.ts3 with precision: 6/);
    refused(
      'day',
      max(TyLine, 'createdAt'),
      new RegExp(
        `is ${created.replace(/[()]/g, '\\$&')}, whose time of day a date column drops; declare TyParent\\.day with type: '${pg ? 'timestamp' : 'datetime'}', precision: 6`,
      ),
    );
    refused('v40', max(TyLine, 'createdAt'), /but the column is not a date and time; declare TyParent\.v40 with type/);
    ok('day', max(TyLine, 'day'));
    refused(
      'ts',
      max(TyLine, 'day'),
      /TyLine\.day is date, but the column is not a date; declare TyParent\.ts with type: 'date'/,
    );
    ok('time', max(TyLine, 'time'));
    refused('ts', max(TyLine, 'time'), /but the column is not a time of day/);
    // Values without an order both databases share.
    refused(
      'flag',
      max(TyLine, 'flag'),
      /max\(\) needs numbers, strings, dates or times; TyLine\.flag is boolean \(count the true ones with count\(\) and where\)/,
    );
    refused('choice', max(TyLine, 'choice'), /max\(\) needs numbers, strings, dates or times; TyLine\.choice is enum/);
    if (pg) refused('uid', min(TyLine, 'uid'), /min\(\) needs numbers, strings, dates or times; TyLine\.uid is uuid/);
    else {
      ok('uid', min(TyLine, 'uid'));
      refused(
        'v40',
        min(TyLine, 'uid'),
        /TyLine\.uid is uuid, but the column is not uuid; declare TyParent\.v40 with type: 'uuid'/,
      );
    }
  });

  it('database-specific types: time zones on PostgreSQL; datetime and timestamp alike on MariaDB', () => {
    if (pg) {
      ok('tstz', max(TyPgLine, 'tstz'), TyPg);
      ok('int4', count(TyPgLine), TyPg);
      refused(
        'ts',
        max(TyPgLine, 'tstz'),
        /^aggregate "ts" of TyPg: max\(TyPgLine, 'tstz'\) into TyPg\.ts \(timestamp\(6\)\): TyPgLine\.tstz is timestamptz\(6\), and a timestamp column would shift it by the session's time zone; declare TyPg\.ts with type: 'timestamptz'$/,
        TyPg,
      );
      refused(
        'tstz',
        min(TyPgLine, 'ts'),
        /and a timestamptz column would shift it .*declare TyPg\.tstz with type: 'timestamp'/,
        TyPg,
      );
      refused('tstz3', max(TyPgLine, 'tstz'), /declare TyPg\.tstz3 with precision: 6/, TyPg);
      refused('cv20', max(TyPgLine, 'doc'), /max\(\) needs numbers, strings, dates or times; TyPgLine\.doc is jsonb/, TyPg);
      refused('cv20', max(TyPgLine, 'ints'), /TyPgLine\.ints is integer\[\]/, TyPg);
    } else {
      ok('ts6', max(TyMyLine, 'dt6'), TyMy);
      ok('dt6', max(TyMyLine, 'ts6'), TyMy);
      refused(
        'dt',
        max(TyMyLine, 'ts6'),
        /into TyMy\.dt \(datetime\(0\)\): TyMyLine\.ts6 is timestamp\(6\), .*declare TyMy\.dt with precision: 6/,
        TyMy,
      );
      ok('medium', sum(TyMyLine, 'medium'), TyMy);
      ok('fixed', sum(TyMyLine, 'fixed'), TyMy);
      refused(
        'medium',
        sum(TyMyLine, 'fixed'),
        /TyMyLine\.fixed is decimal\(8,3\), which the column would round; declare TyMy\.medium as decimal with scale >= 3/,
        TyMy,
      );
      refused('long', max(TyMyLine, 'doc'), /TyMyLine\.doc is json/, TyMy);
    }
  });
});
