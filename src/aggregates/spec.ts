import type { EntityTarget, FindOptionsWhere, ObjectLiteral } from 'typeorm';

/** The aggregate functions a derived field may be declared with. */
export type AggregateKind = 'count' | 'sum' | 'min' | 'max' | 'avg';

/**
 * The child entity of an aggregate: a class, an EntitySchema, an entity name, or a function
 * returning one (`() => Comment`), for entities that refer to each other across files.
 */
export type ChildTarget<Child extends ObjectLiteral = ObjectLiteral> = EntityTarget<Child> | (() => EntityTarget<Child>);

/** Options of one declared aggregate. */
export interface AggregateOptions<Child extends ObjectLiteral = ObjectLiteral> {
  /**
   * Only the children matching this TypeORM filter are aggregated (conditional aggregate). An
   * array is an OR of its objects. Supported: plain equality, `Equal`, `Not`, `LessThan`,
   * `LessThanOrEqual`, `MoreThan`, `MoreThanOrEqual`, `In`, `IsNull`, `Between`, `Like`, `ILike`,
   * `And`, `Or`. Values are bound as parameters.
   * @defaultValue every live child
   */
  where?: FindOptionsWhere<Child> | FindOptionsWhere<Child>[];
  /**
   * Property of the child pointing at the parent: a column (`orderId`) or a many-to-one relation
   * (`order`). Needed only when the child has several many-to-one relations to the parent.
   * @defaultValue the child's one many-to-one relation to the parent
   */
  foreignKey?: Extract<keyof Child, string>;
  /**
   * Name of a many-to-many relation between the parent and the child, declared on either entity
   * (`count(() => Tag, { via: 'tags' })` with `Post.tags: Tag[]`): the children aggregated are
   * the ones linked to the parent through its join table. Not with `foreignKey`.
   * @defaultValue none: the children point at the parent with a foreign key
   */
  via?: string;
}

/**
 * A derived field of a parent, declared as an aggregate over one child entity: built with
 * {@link count}, {@link sum}, {@link min}, {@link max} or {@link avg}, and given to
 * `coalescer.parent(Parent, { aggregates: { field: spec } })`.
 */
export interface AggregateSpec {
  /** The aggregate function. */
  readonly kind: AggregateKind;
  /** The child entity aggregated (class, EntitySchema or name, or a function returning one). */
  readonly child: ChildTarget;
  /**
   * Arithmetic over the child's properties (`'qty * unitPrice'`): names, numbers, `+ - * /`,
   * parentheses, unary minus. Absent for `count` of rows.
   */
  readonly expression: string | undefined;
  /** See {@link AggregateOptions.where}. */
  readonly where: FindOptionsWhere<ObjectLiteral> | FindOptionsWhere<ObjectLiteral>[] | undefined;
  /** See {@link AggregateOptions.foreignKey}. */
  readonly foreignKey: string | undefined;
  /** See {@link AggregateOptions.via}. */
  readonly via?: string | undefined;
}

function spec<Child extends ObjectLiteral>(
  kind: AggregateKind,
  child: ChildTarget<Child>,
  expression: string | undefined,
  options: AggregateOptions<Child> = {},
): AggregateSpec {
  return Object.freeze({
    kind,
    child: child as ChildTarget,
    expression,
    where: options.where as AggregateSpec['where'],
    foreignKey: options.foreignKey,
    via: options.via,
  });
}

/**
 * Number of live children (`count(OrderLine)`), of those matching `where`, or of those whose
 * `expression` (of any type) is not NULL. 0 for a parent with none. Written to an integer,
 * decimal or float column. Every builder takes the child lazily too (`count(() => Comment)`), and
 * aggregates children linked through a many-to-many relation with `via`
 * (`count(() => Tag, { via: 'tags' })`).
 */
export function count<Child extends ObjectLiteral>(child: ChildTarget<Child>, options?: AggregateOptions<Child>): AggregateSpec;
export function count<Child extends ObjectLiteral>(
  child: ChildTarget<Child>,
  expression: string,
  options?: AggregateOptions<Child>,
): AggregateSpec;
export function count<Child extends ObjectLiteral>(
  child: ChildTarget<Child>,
  expressionOrOptions?: string | AggregateOptions<Child>,
  options?: AggregateOptions<Child>,
): AggregateSpec {
  if (typeof expressionOrOptions === 'string' || expressionOrOptions === undefined) {
    return spec('count', child, expressionOrOptions, options);
  }
  return spec('count', child, undefined, expressionOrOptions);
}

/**
 * Sum of a numeric `expression` over the live children (`sum(OrderLine, 'qty * unitPrice')`); 0
 * for a parent with none. Its column must hold it unrounded: an integer sum any numeric column, a
 * decimal one a decimal column of at least its scale (or a float one); a float sum (or one with
 * `/`) a float column, or a decimal one that rounds it at its scale.
 */
export function sum<Child extends ObjectLiteral>(
  child: ChildTarget<Child>,
  expression: string,
  options?: AggregateOptions<Child>,
): AggregateSpec {
  return spec('sum', child, expression, options);
}

/**
 * Smallest value of `expression` (a number, string, date or time) over the live children; NULL for
 * a parent with none. Its column is of the same kind and cuts nothing: numbers as for {@link sum},
 * strings at least as long, date-times with at least as many digits of seconds (and, on
 * PostgreSQL, the same time zone handling).
 */
export function min<Child extends ObjectLiteral>(
  child: ChildTarget<Child>,
  expression: string,
  options?: AggregateOptions<Child>,
): AggregateSpec {
  return spec('min', child, expression, options);
}

/**
 * Largest value of `expression` over the live children (`max(OrderLine, 'createdAt')`); NULL for
 * a parent with none. Takes and writes what {@link min} does.
 */
export function max<Child extends ObjectLiteral>(
  child: ChildTarget<Child>,
  expression: string,
  options?: AggregateOptions<Child>,
): AggregateSpec {
  return spec('max', child, expression, options);
}

/**
 * Average of a numeric `expression` over the live children; NULL for a parent with none. Written
 * to a decimal column (rounded at its scale; verify compares at that scale) or a float one, never
 * an integer one.
 */
export function avg<Child extends ObjectLiteral>(
  child: ChildTarget<Child>,
  expression: string,
  options?: AggregateOptions<Child>,
): AggregateSpec {
  return spec('avg', child, expression, options);
}
