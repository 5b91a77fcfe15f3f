import type { DataSource, EntityMetadata } from 'typeorm';
import type { ColumnMetadata } from '../typeorm-types';
import { ConfigError, RegistrationError } from '../errors';
import { dialectOf, type DialectName } from './dialect';

/** Collects bound values while SQL is rendered; each value becomes a placeholder. */
export interface Params {
  /** Binds `value`; returns its placeholder. */
  value(value: unknown): string;
}

/** A rendered statement: SQL text and its bound values, ready for `manager.query`. */
export interface Statement {
  readonly sql: string;
  readonly params: unknown[];
}

/** SQL that takes its bound values as it is rendered. */
export type Sql = (p: Params) => string;

/** The ids of one statement, bound once: conditions and row sources over them. */
export interface IdsRef {
  /** The condition `<column> IN (ids)`. */
  in(column: string): string;
  /** PostgreSQL only: the ids as a one-column row source `<alias>(id)`. */
  rows(alias: string): string;
}

/** How SQL is written and bound for one dialect: what aggregates are compiled with. */
export interface Renderer {
  readonly name: DialectName;
  /** Quotes one identifier with the driver's `escape()`. */
  quote(identifier: string): string;
  /** The quoted, schema-qualified table of an entity. */
  table(metadata: EntityMetadata): string;
  /** Renders `build` with fresh placeholders. */
  render(build: Sql): Statement;
  /**
   * Binds the ids of a statement whose parents have `primary` as key. PostgreSQL binds them
   * once as an array of the key's own type (`= ANY($1::int[])`, so the key's index is used);
   * MySQL/MariaDB binds the list at each use.
   */
  ids(primary: ColumnMetadata): (p: Params, ids: readonly unknown[]) => IdsRef;
  /** Case-insensitive LIKE. */
  ilike(column: string, placeholder: string): string;
}

// Markers for MySQL placeholders: replaced in order of appearance once the SQL is complete,
// so the order in which fragments are rendered never matters.
const MARK = '\u0001';
// eslint-disable-next-line no-control-regex -- the markers are control characters on purpose
const MARKED = /\u0001(\d+)\u0001/g;

function checkIdentifier(identifier: string): string {
  // Identifiers come from entity metadata, never from data; a control character would only
  // ever be a mistake, and would break placeholder markers.
  // eslint-disable-next-line no-control-regex -- looking for control characters is the point
  if (/[\u0000-\u001f]/.test(identifier)) {
    throw new RegistrationError(`identifier ${JSON.stringify(identifier)} contains a control character`);
  }
  return identifier;
}

/** The renderer of a DataSource's dialect; a RegistrationError naming `context` for a driver the library does not support. */
export function rendererOf(dataSource: DataSource, context: string): Renderer {
  let dialect: DialectName;
  try {
    dialect = dialectOf(dataSource);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new RegistrationError(
        `${context}: aggregates do not support the "${String(dataSource.options.type)}" driver (supported: postgres, mysql, mariadb)`,
        { cause: error },
      );
    }
    throw error;
  }
  const escape = (identifier: string): string => dataSource.driver.escape(checkIdentifier(identifier));
  if (dialect === 'postgres') {
    return {
      name: 'postgres',
      quote: escape,
      table: (m) => (m.schema ? `${escape(m.schema)}.${escape(m.tableName)}` : escape(m.tableName)),
      render(build) {
        const params: unknown[] = [];
        const sql = build({ value: (v) => `$${params.push(v)}` });
        return { sql, params };
      },
      ids(primary) {
        const type = dataSource.driver.normalizeType({ type: primary.type, length: primary.length } as never);
        if (!/^[a-z][a-z0-9 ]*$/.test(type)) {
          throw new RegistrationError(`primary column ${primary.propertyName}: unsupported key type ${JSON.stringify(type)}`);
        }
        return (p, ids) => {
          const array = `${p.value(ids)}::${type}[]`;
          return { in: (column) => `${column} = ANY(${array})`, rows: (alias) => `unnest(${array}) AS ${alias}(id)` };
        };
      },
      ilike: (column, placeholder) => `${column} ILIKE ${placeholder}`,
    };
  }
  return {
    name: 'mysql',
    quote: escape,
    table: (m) => (m.database ? `${escape(m.database)}.${escape(m.tableName)}` : escape(m.tableName)),
    render(build) {
      const values: unknown[] = [];
      const marked = build({ value: (v) => `${MARK}${values.push(v) - 1}${MARK}` });
      const params: unknown[] = [];
      const sql = marked.replace(MARKED, (_m, i: string) => {
        params.push(values[Number(i)]);
        return '?';
      });
      return { sql, params };
    },
    ids: () => (p, ids) => ({
      in: (column) => `${column} IN (${ids.map((id) => p.value(id)).join(', ')})`,
      rows: () => {
        throw new Error('row source of ids: PostgreSQL only');
      },
    }),
    ilike: (column, placeholder) => `LOWER(${column}) LIKE LOWER(${placeholder})`,
  };
}
