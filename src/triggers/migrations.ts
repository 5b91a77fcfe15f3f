import type { DataSource, EntityMetadata, EntityTarget, MigrationInterface, ObjectLiteral, QueryRunner } from 'typeorm';
import { ConfigError, RegistrationError } from '../errors';
import { dialectOf, sqlFor, type DialectName } from '../db/dialect';
import type { Registry } from '../registry/registry';
import type { TriggerStatements, TriggerTable } from './spec';
import { triggerStatements } from './trigger-sql';
import { mysqlTriggerStatements, quoteMysqlIdent } from './mysql-sql';

/** Options of `coalescer.triggerMigration()`. */
export interface TriggerMigrationOptions {
  /**
   * The migration's name without its timestamp: the class is `<name><timestamp>`, as TypeORM
   * wants migration names. A JavaScript identifier.
   * @defaultValue 'CoalesceTriggers'
   */
  name?: string;
  /**
   * The migration's timestamp (ms), which orders it among the host's migrations.
   * @defaultValue Date.now()
   */
  timestamp?: number;
}

/** The source text of a trigger migration, for the host's migrations folder. */
export interface TriggerMigrationSource {
  /** `<timestamp>-<name>.<ts|js>`, the file name TypeORM's own generator would give. */
  readonly fileName: string;
  /** The migration class's name, `<name><timestamp>`. */
  readonly className: string;
  readonly text: string;
}

/** The module format of a generated migration: TypeScript, CommonJS or ES module JavaScript. */
export type MigrationFormat = 'ts' | 'cjs' | 'esm';

/** A TypeORM migration class (what `migrations: [...]` takes). */
export type MigrationClass = new () => MigrationInterface;

const NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * The triggers of a coalescer's children (PostgreSQL, MySQL or MariaDB): which children, the
 * SQL, and the migration that carries it. Generated from the registration at the time of the call.
 */
export class TriggerMigrations {
  constructor(
    private readonly dataSource: DataSource,
    private readonly registry: Registry,
    private readonly namespace: string,
    private readonly outboxTable: string,
  ) {}

  /**
   * The statements for `children` (entity targets or names; default: every child registered
   * with capture 'triggers'). Errors name the child and what is allowed.
   */
  statements(children?: readonly (EntityTarget<ObjectLiteral> | string)[]): TriggerStatements {
    return this.plan(children).statements;
  }

  /** A migration class whose `up()` creates the triggers and `down()` drops them. */
  migration(children?: readonly (EntityTarget<ObjectLiteral> | string)[], options: TriggerMigrationOptions = {}): MigrationClass {
    const { up, down } = this.statements(children);
    const { className } = naming(options);
    const run = async (qr: QueryRunner, statements: readonly string[]): Promise<void> => {
      for (const sql of statements) await qr.query(sql);
    };
    // A computed key names the class, as TypeORM reads a migration's timestamp from its name.
    const made = {
      [className]: class implements MigrationInterface {
        name = className;
        up(qr: QueryRunner): Promise<void> {
          return run(qr, up);
        }
        down(qr: QueryRunner): Promise<void> {
          return run(qr, down);
        }
      },
    }[className];
    return made as MigrationClass;
  }

  /** The same migration as source text, in `format`. */
  source(
    children: readonly (EntityTarget<ObjectLiteral> | string)[] | undefined,
    options: TriggerMigrationOptions & { format?: MigrationFormat } = {},
  ): TriggerMigrationSource {
    const { statements, tables, dialect } = this.plan(children);
    const { name, timestamp, className } = naming(options);
    const format = options.format ?? 'ts';
    return {
      fileName: `${timestamp}-${name}.${format === 'ts' ? 'ts' : 'js'}`,
      className,
      text: migrationText({
        className,
        format,
        dialect,
        ...statements,
        namespace: this.namespace,
        tables: tables.map((t) => t.table).join(', '),
      }),
    };
  }

  private plan(children?: readonly (EntityTarget<ObjectLiteral> | string)[]): {
    statements: TriggerStatements;
    tables: TriggerTable[];
    dialect: DialectName;
  } {
    const dialect = dialectOf(this.dataSource);
    const tables = this.children(children).map((child) => this.table(child, dialect));
    const spec = { namespace: this.namespace, outbox: this.outbox(dialect, tables), tables };
    const statements =
      dialect === 'postgres'
        ? triggerStatements(spec)
        : mysqlTriggerStatements(spec, this.dataSource.options.type === 'mariadb' ? 'mariadb' : 'mysql');
    return { statements, tables, dialect };
  }

  /**
   * The outbox as the triggers name it. A MySQL trigger resolves unqualified names in its table's
   * database: a child in another database than the DataSource's names the outbox with its database.
   */
  private outbox(dialect: DialectName, tables: readonly TriggerTable[]): string {
    const table = sqlFor(this.dataSource).table(this.outboxTable);
    if (dialect === 'postgres') return table;
    const home = (this.dataSource.driver as { database?: string }).database;
    if (home === undefined || tables.every((t) => t.schema === undefined || t.schema === home)) return table;
    return `${quoteMysqlIdent(home)}.${table}`;
  }

  /** The children asked for, resolved; each must be a registered child with a foreign key. */
  private children(children?: readonly (EntityTarget<ObjectLiteral> | string)[]): EntityMetadata[] {
    if (children === undefined) {
      const all = this.registry.triggerChildren().map((c) => c.child);
      if (all.length === 0) {
        throw new RegistrationError(
          `triggerMigration(): no child is registered with capture 'triggers'; register one (child(Line, { parent, foreignKey, capture: 'triggers' })) ` +
            `or name the children (registered: ${this.registry.childNames().join(', ') || 'none'})`,
        );
      }
      return all;
    }
    if (!Array.isArray(children) || children.length === 0) {
      throw new RegistrationError(
        'triggerMigration(): give a non-empty list of children, or none for every trigger-captured child',
      );
    }
    const seen = new Set<EntityMetadata>();
    for (const target of children) {
      const name = typeof target === 'string' ? target : describe(target);
      const known = `registered children: ${this.registry.childNames().join(', ') || 'none'}`;
      if (!this.dataSource.hasMetadata(target)) {
        throw new RegistrationError(`triggerMigration(): ${name} is not an entity of this DataSource (${known})`);
      }
      const metadata = this.dataSource.getMetadata(target);
      if (this.registry.foreignKeyLinksOf(metadata).length === 0) {
        const via = this.registry.linksOf(metadata).length > 0;
        throw new RegistrationError(
          via
            ? `triggerMigration(): child ${metadata.name} is linked to its parents only through many-to-many (via) join tables, which triggers do not capture`
            : `triggerMigration(): ${metadata.name} is not a registered child (${known})`,
        );
      }
      seen.add(metadata);
    }
    return [...seen];
  }

  private table(child: EntityMetadata, dialect: DialectName): TriggerTable {
    if (child.tableType === 'view' || child.expression !== undefined) {
      throw new RegistrationError(`triggerMigration(): child ${child.name} is a view; triggers need a table`);
    }
    return {
      entity: child.name,
      // A MySQL database is what a PostgreSQL schema is to the triggers.
      schema: dialect === 'postgres' ? child.schema : child.database,
      table: child.tableName,
      primary: child.primaryColumns.map((c) => c.databaseName),
      columns: [...new Set(child.columns.filter((c) => !c.isVirtualProperty).map((c) => c.databaseName))],
      marks: this.registry.foreignKeyLinksOf(child).map((link) => ({
        type: link.parent.name,
        idKind: link.parent.idKind,
        base: link.parent.base,
        column: link.column.databaseName,
      })),
    };
  }
}

/** The migration's name, timestamp and class name, checked. */
function naming(options: TriggerMigrationOptions): { name: string; timestamp: number; className: string } {
  const name = options.name ?? 'CoalesceTriggers';
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new ConfigError(
      `invalid triggerMigration option "name" = ${JSON.stringify(name)}: expected a JavaScript identifier (letters, digits, "_", "$", not starting with a digit)`,
    );
  }
  const timestamp = options.timestamp ?? Date.now();
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new ConfigError(
      `invalid triggerMigration option "timestamp" = ${String(timestamp)}: expected ms since 1970, an integer >= 0`,
    );
  }
  return { name, timestamp, className: `${name}${timestamp}` };
}

function describe(target: EntityTarget<ObjectLiteral>): string {
  if (typeof target === 'function') return target.name || 'anonymous class';
  const named = target as { options?: { name?: unknown }; name?: unknown };
  if (typeof named.options?.name === 'string') return named.options.name;
  return typeof named.name === 'string' ? named.name : String(target);
}

/** A statement as a template literal's body. */
function templated(sql: string): string {
  return sql.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${');
}

function migrationText(m: {
  className: string;
  format: MigrationFormat;
  dialect: DialectName;
  up: readonly string[];
  down: readonly string[];
  namespace: string;
  tables: string;
}): string {
  const ts = m.format === 'ts';
  const body = (statements: readonly string[]): string =>
    statements.map((sql) => `    await queryRunner.query(\`${templated(sql)}\`);`).join('\n');
  const param = ts ? 'queryRunner: QueryRunner' : 'queryRunner';
  const returns = ts ? ': Promise<void>' : '';
  const header = [
    ts ? "import type { MigrationInterface, QueryRunner } from 'typeorm';\n" : m.format === 'cjs' ? "'use strict';\n" : '',
    '/**',
    ` * typeorm-coalesce trigger capture, namespace "${m.namespace}": ${m.dialect === 'postgres' ? 'statement-level' : 'row'} triggers on`,
    ` * ${m.tables} write the parents of every change (raw SQL and other programs included) to the`,
    ' * outbox, which the coalescer relays to Redis. Generated by `coalesce triggers`: generate it again',
    ` * after changing how these children are registered. down() drops the triggers${m.dialect === 'postgres' ? ' and their functions' : ''}.`,
    ' */',
  ].join('\n');
  const declaration = ts
    ? `export class ${m.className} implements MigrationInterface {\n  name = '${m.className}';`
    : m.format === 'esm'
      ? `export class ${m.className} {\n  name = '${m.className}';`
      : `class ${m.className} {\n  name = '${m.className}';`;
  const footer = m.format === 'cjs' ? `\nmodule.exports = { ${m.className} };\n` : '';
  return `${header}
${declaration}

  async up(${param})${returns} {
${body(m.up)}
  }

  async down(${param})${returns} {
${body(m.down)}
  }
}
${footer}`;
}
