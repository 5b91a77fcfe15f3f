import type { DataSource, EntityMetadata, EntityTarget, ObjectLiteral } from 'typeorm';
import { ConfigError, RegistrationError } from '../errors';
import { dialectOf } from '../db/dialect';
import { compileAggregates } from '../aggregates/compile';
import type { ColumnMetadata } from '../typeorm-types';
import { PRIORITY_BASE } from '../redis/score';
import { canonicalId, classify, idKindOf, idValue, type Classified, type ParentId } from './members';
import { foreignKeyLink, junctionLink, readForeignKey, type ChildLink, type ForeignKeyLink, type JunctionLink } from './links';
import { recomputeWithAggregates } from './recompute';
import { derivedColumns } from './derived';
import { chainCycle } from './chains';
import { CAPTURE_MODES, type CaptureMode, type ChildOptions, type ParentOptions, type ParentType } from './model';

/** Parents and children of one coalescer, resolved against the DataSource's metadata. */
export class Registry {
  private readonly parents = new Map<string, ParentType>();
  private readonly links = new Map<EntityMetadata['target'], ChildLink[]>();
  /** Children captured by database triggers: the subscriber does not see them. */
  private readonly triggered = new Map<EntityMetadata['target'], ForeignKeyLink[]>();
  /** Many-to-many links by join table (every join table's metadata has the same empty target). */
  private readonly junctions = new Map<string, JunctionLink[]>();
  /** Links registered for aggregates rather than by the host's `child()`. */
  private readonly forAggregates = new WeakSet<ChildLink>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly defaults: { readonly maxWaitMs?: number | undefined; readonly minIntervalMs?: number } = {},
  ) {}

  addParent(target: EntityTarget<ObjectLiteral>, options: ParentOptions): ParentType {
    this.requireInitialized('parent()');
    const metadata = this.metadataOf(target, 'parent');
    if (this.parents.has(metadata.name)) {
      throw new RegistrationError(`parent ${metadata.name} is already registered`);
    }
    if (metadata.name.includes(':')) {
      throw new RegistrationError(`parent ${metadata.name}: an entity name used as a parent may not contain ':'`);
    }
    if (metadata.primaryColumns.length !== 1) {
      throw new RegistrationError(
        `parent ${metadata.name} has ${metadata.primaryColumns.length} primary columns; a parent needs exactly one`,
      );
    }
    if (!options.recompute && !options.recomputeMany && !options.aggregates) {
      throw new RegistrationError(`parent ${metadata.name}: give recompute or recomputeMany, or declare aggregates`);
    }
    if (options.expected !== undefined && typeof options.expected !== 'function') {
      throw new RegistrationError(`parent ${metadata.name}: expected must be a function (ids, manager) => Map of id to fields`);
    }
    const batchSize = options.batchSize ?? 100;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
      throw new RegistrationError(
        `parent ${metadata.name}: batchSize must be an integer from 1 to 10000, got ${String(batchSize)}`,
      );
    }
    const priority = options.priority ?? 'normal';
    if (!(priority in PRIORITY_BASE)) {
      throw new RegistrationError(
        `parent ${metadata.name}: priority must be one of ${Object.keys(PRIORITY_BASE).join(', ')}, got ${String(priority)}`,
      );
    }
    const ms = (name: 'settleMs' | 'maxWaitMs' | 'minIntervalMs', value: number | undefined): void => {
      if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 86_400_000)) {
        throw new RegistrationError(
          `parent ${metadata.name}: ${name} must be an integer from 0 to 86400000 ms, got ${String(value)}`,
        );
      }
    };
    ms('settleMs', options.settleMs);
    ms('maxWaitMs', options.maxWaitMs);
    ms('minIntervalMs', options.minIntervalMs);
    const primary = metadata.primaryColumns[0] as ColumnMetadata;
    // Checked before registering, so a bad declaration leaves nothing half registered.
    const declared = derivedColumns(metadata, options.derived);
    const aggregates = options.aggregates ? compileAggregates(this.dataSource, metadata, options.aggregates) : undefined;
    const recompute = aggregates ? recomputeWithAggregates(aggregates, options) : options;
    // Fields declared as aggregates are derived columns too: a host save writing one back is caught.
    const aggregated = (aggregates?.fields ?? []).map((f) => f.column).filter((c) => !c.relationMetadata);
    const parent: ParentType = Object.freeze({
      name: metadata.name,
      metadata,
      primary,
      idKind: idKindOf(primary),
      base: PRIORITY_BASE[priority],
      batchSize,
      settleMs: options.settleMs ?? 0,
      maxWaitMs: options.maxWaitMs ?? this.defaults.maxWaitMs,
      minIntervalMs: options.minIntervalMs ?? this.defaults.minIntervalMs ?? 0,
      recompute: recompute.recompute,
      recomputeMany: recompute.recomputeMany,
      aggregates,
      expected: options.expected,
      derived: Object.freeze([...new Set([...declared, ...aggregated])]),
    });
    const links = this.aggregateLinks(parent);
    this.parents.set(parent.name, parent);
    this.checkChains(() => this.parents.delete(parent.name));
    for (const link of links) this.addJunction(link, 'aggregate');
    return parent;
  }

  /**
   * The many-to-many links a parent's aggregates read through (`count(() => Tag, { via: 'tags' })`):
   * registered with the parent, so that a link added or removed, or a linked child changed, marks
   * it. Checked before anything is registered.
   */
  private aggregateLinks(parent: ParentType): JunctionLink[] {
    const links = new Map<string, JunctionLink>();
    for (const field of parent.aggregates?.fields ?? []) {
      const source = field.source;
      if (source.kind !== 'junction') continue;
      if (this.triggered.has(source.child.target)) {
        throw new RegistrationError(
          `aggregate "${field.field}" of ${parent.name}: via "${source.via}" needs ${source.child.name} captured by the subscriber ` +
            `(many-to-many links are captured by the subscriber only), but it is captured by triggers`,
        );
      }
      const link = junctionLink(source.child, parent, source.via);
      links.set(`${source.child.name}\u0000${link.parentColumn.databaseName}`, link);
    }
    return [...links.values()];
  }

  /**
   * Runs `register` (several registrations) whole or not at all: when it throws, every parent
   * and child it registered is taken back.
   */
  atomically<T>(register: () => T): T {
    const state: Map<unknown, unknown>[] = [this.parents, this.links, this.triggered, this.junctions];
    const saved = state.map((map) => [...map]);
    try {
      return register();
    } catch (error) {
      state.forEach((map, i) => {
        map.clear();
        for (const [key, value] of saved[i] ?? []) map.set(key, value);
      });
      throw error;
    }
  }

  /**
   * Links through which recomputing a parent of type `parent` makes other parents stale: the
   * links of its own entity registered as a child (Order -> Customer). Many-to-many links are
   * left out: their parents are marked when the links change, not when the child is recomputed.
   */
  chainLinksOf(parent: ParentType): readonly ForeignKeyLink[] {
    const target = parent.metadata.target;
    const links = this.links.get(target);
    const triggered = this.triggered.get(target);
    if (!links && !triggered) return [];
    return [...(links ?? []), ...(triggered ?? [])].filter((l): l is ForeignKeyLink => l.kind === 'foreignKey');
  }

  /**
   * Rejects a registration that closes a cycle of parent chains (A's recompute marks B, B's
   * marks A: they would mark each other forever); `undo` takes the registration back first.
   */
  private checkChains(undo: () => void): void {
    const cycle = chainCycle([...this.parents.values()], (type) => this.chainLinksOf(type).map((l) => l.parent));
    if (cycle === undefined) return;
    undo();
    throw new RegistrationError(
      `parent chain cycle: ${cycle.map((t) => t.name).join(' -> ')}: each recompute would mark the next for ever; register one of these links without the other`,
    );
  }

  /**
   * Registers a child link. `by` is who asks: the host's `child()` call, or the registration of
   * an aggregate (or of a declared entity) that reads the child through it. A link registered for
   * an aggregate is the same link a later `child()` call gives: that call returns it.
   */
  addChild(target: EntityTarget<ObjectLiteral>, options: ChildOptions, by: 'child' | 'aggregate' = 'child'): ChildLink {
    this.requireInitialized('child()');
    const metadata = this.metadataOf(target, 'child');
    const parent = this.parentOf(options.parent, `child ${metadata.name}`);
    const { foreignKey, via } = options;
    if ((foreignKey === undefined) === (via === undefined)) {
      throw new RegistrationError(
        `child ${metadata.name}: give exactly one of foreignKey (a column or many-to-one relation) or via (a many-to-many relation), ` +
          `got ${foreignKey === undefined ? 'neither' : `foreignKey "${foreignKey}" and via "${String(via)}"`}`,
      );
    }
    const capture = this.captureOf(metadata, parent, options.capture, via);
    if (capture === 'triggers') {
      const existing = this.triggered.get(metadata.target) ?? [];
      const link = foreignKeyLink(metadata, parent, foreignKey as string);
      if (existing.some((l) => l.parent === parent && l.column === link.column)) {
        throw new RegistrationError(
          `child ${metadata.name} is already registered for parent ${parent.name} by "${String(foreignKey)}"`,
        );
      }
      this.triggered.set(metadata.target, [...existing, link]);
      this.checkChains(() =>
        existing.length > 0 ? this.triggered.set(metadata.target, existing) : this.triggered.delete(metadata.target),
      );
      return link;
    }
    if (via !== undefined) return this.addJunction(junctionLink(metadata, parent, via), by);
    const existing = this.links.get(metadata.target) ?? [];
    const link = foreignKeyLink(metadata, parent, foreignKey as string);
    const same = existing.find((l) => l.kind === 'foreignKey' && l.parent === parent && l.column === link.column);
    if (same && (by === 'aggregate' || this.forAggregates.has(same))) return same;
    if (same) {
      throw new RegistrationError(
        `child ${metadata.name} is already registered for parent ${parent.name} by "${String(foreignKey)}"`,
      );
    }
    if (by === 'aggregate') this.forAggregates.add(link);
    this.links.set(metadata.target, [...existing, link]);
    this.checkChains(() =>
      existing.length > 0 ? this.links.set(metadata.target, existing) : this.links.delete(metadata.target),
    );
    return link;
  }

  private addJunction(link: JunctionLink, by: 'child' | 'aggregate'): JunctionLink {
    const { child, parent } = link;
    const existing = this.links.get(child.target) ?? [];
    const same = existing.find(
      (l): l is JunctionLink => l.kind === 'junction' && l.parent === parent && l.parentColumn === link.parentColumn,
    );
    if (same && (by === 'aggregate' || this.forAggregates.has(same))) return same;
    if (same) {
      throw new RegistrationError(
        `child ${child.name} is already registered for parent ${parent.name} via "${link.relation.propertyName}"`,
      );
    }
    if (by === 'aggregate') this.forAggregates.add(link);
    this.links.set(child.target, [...existing, link]);
    const key = link.junction.tablePath;
    this.junctions.set(key, [...(this.junctions.get(key) ?? []), link]);
    return link;
  }

  /**
   * The capture mode of a new link of `child`, checked: a known mode, the same as the child's
   * other links, any supported database for triggers, and no many-to-many link captured by triggers.
   */
  private captureOf(child: EntityMetadata, parent: ParentType, capture: unknown, via: string | undefined): CaptureMode {
    const mode = capture ?? 'subscriber';
    const what = `child ${child.name} (parent ${parent.name})`;
    if (!CAPTURE_MODES.includes(mode as CaptureMode)) {
      throw new RegistrationError(
        `${what}: capture must be one of ${CAPTURE_MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(capture) ?? String(capture)}`,
      );
    }
    const before = this.triggered.has(child.target) ? 'triggers' : this.links.has(child.target) ? 'subscriber' : undefined;
    if (before !== undefined && before !== mode) {
      throw new RegistrationError(
        `${what}: capture '${String(mode)}' differs from the '${before}' of its earlier child() call; every link of one child is captured one way`,
      );
    }
    if (mode !== 'triggers') return 'subscriber';
    if (via !== undefined) {
      throw new RegistrationError(
        `${what}: via "${via}" cannot use capture 'triggers' (many-to-many links are captured by the subscriber only): use capture 'subscriber'`,
      );
    }
    // PostgreSQL, MySQL and MariaDB all have triggers; another driver is refused here, by name.
    dialectOf(this.dataSource);
    return 'triggers';
  }

  /** Children captured by triggers, each with its links (all of them foreign keys). */
  triggerChildren(): { readonly child: EntityMetadata; readonly links: readonly ForeignKeyLink[] }[] {
    return [...this.triggered.values()].flatMap((links) => {
      const child = links[0]?.child;
      return child ? [{ child, links }] : [];
    });
  }

  /**
   * Every foreign-key link of a registered child, whatever its capture mode (a child whose
   * triggers are being rolled out may still be captured by the subscriber); none for others.
   */
  foreignKeyLinksOf(metadata: EntityMetadata): readonly ForeignKeyLink[] {
    const subscribed = (this.links.get(metadata.target) ?? []).filter((l): l is ForeignKeyLink => l.kind === 'foreignKey');
    return [...(this.triggered.get(metadata.target) ?? []), ...subscribed];
  }

  /** The parent type whose entity is `metadata`'s, when it declares derived columns. */
  derivedOf(metadata: EntityMetadata): ParentType | undefined {
    for (const parent of this.parents.values()) {
      if (parent.metadata.target === metadata.target) return parent.derived.length > 0 ? parent : undefined;
    }
    return undefined;
  }

  /** Whether some parent type declares derived columns (so a recompute's own writes must be told apart). */
  get anyDerived(): boolean {
    return [...this.parents.values()].some((p) => p.derived.length > 0);
  }

  /** Names of every registered child entity, for messages. */
  childNames(): string[] {
    const names = [...this.triggered.values(), ...this.links.values()].map((links) => links[0]?.child.name);
    return [...new Set(names.filter((n): n is string => n !== undefined))];
  }

  /** The parent type registered for `target`, or a RegistrationError naming the known ones. */
  parentOf(target: EntityTarget<ObjectLiteral> | string, what = 'parent'): ParentType {
    const name = typeof target === 'string' ? target : this.metadataOf(target, 'parent').name;
    const parent = this.parents.get(name);
    if (!parent) {
      throw new RegistrationError(
        `${what}: ${name} is not a registered parent (known: ${this.parentNames().join(', ') || 'none'})`,
      );
    }
    return parent;
  }

  /** The links the subscriber captures of a child entity, or none (not a registered child, or captured by triggers). */
  linksOf(metadata: EntityMetadata): readonly ChildLink[] {
    return this.links.get(metadata.target) ?? [];
  }

  /** The many-to-many links whose join table `metadata` is, or none. */
  junctionLinksOf(metadata: EntityMetadata): readonly JunctionLink[] {
    return metadata.isJunction ? (this.junctions.get(metadata.tablePath) ?? []) : [];
  }

  parentNames(): string[] {
    return [...this.parents.keys()];
  }

  parentTypes(): ParentType[] {
    return [...this.parents.values()];
  }

  /** Member of a parent: `"<Type>:<id>"`, with the id spelled canonically; a RegistrationError for a bad id. */
  encode(parent: ParentType, id: unknown): string {
    return `${parent.name}:${canonicalId(parent.name, parent.idKind, id)}`;
  }

  /** The id a recompute receives for an id given to `mark()` (canonical, typed as the key). */
  idOf(parent: ParentType, id: unknown): ParentId {
    return idValue(parent.idKind, canonicalId(parent.name, parent.idKind, id));
  }

  /** What a member read from Redis is; `foreign` are the types other processes registered. */
  classify(key: Buffer, foreign: ReadonlySet<string> = new Set()): Classified<ParentType> {
    return classify(key, this.parents, foreign);
  }

  private requireInitialized(what: string): void {
    if (!this.dataSource.isInitialized) {
      throw new ConfigError(
        `${what}: the DataSource is not initialized: call await dataSource.initialize() before registering parents and children`,
      );
    }
  }

  private metadataOf(target: EntityTarget<ObjectLiteral>, role: string): EntityMetadata {
    if (!this.dataSource.hasMetadata(target)) {
      const name = typeof target === 'string' ? target : describeTarget(target);
      throw new RegistrationError(`${role} ${name} is not an entity of this DataSource (is it listed in its entities?)`);
    }
    return this.dataSource.getMetadata(target);
  }
}

function describeTarget(target: EntityTarget<ObjectLiteral>): string {
  if (typeof target === 'function') return target.name || 'anonymous class';
  if (typeof target === 'object' && target !== null) {
    const named = target as { name?: unknown; options?: { name?: unknown } };
    if (typeof named.options?.name === 'string') return named.options.name;
    if (typeof named.name === 'string') return named.name;
  }
  return String(target);
}

/** Value of the child's foreign key in `entity`, through the explicit column or the relation object; undefined when not carried. */
export function foreignKeyOf(link: ForeignKeyLink, entity: ObjectLiteral | undefined): unknown {
  const read = readForeignKey(link, entity);
  return read.known ? read.value : undefined;
}
