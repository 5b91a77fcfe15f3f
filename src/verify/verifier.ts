import { setTimeout as sleep } from 'node:timers/promises';
import { In, type DataSource, type ObjectLiteral } from 'typeorm';
import { ConfigError, RegistrationError } from '../errors';
import type { Reads } from '../redis/reads';
import type { ParentId, ParentType } from '../registry/model';
import type { Registry } from '../registry/registry';
import { columnType, type ValueType } from '../aggregates/types';
import { sameValue } from './compare';
import { asColumnValues } from './show';

/** Options of `coalescer.verify()`. Give `ids` or `sample`, or neither to check every row. */
export interface VerifyOptions {
  /** Check only these parents. */
  ids?: readonly ParentId[];
  /** Check a random sample of this many parents. */
  sample?: number;
  /**
   * Parents compared per SELECT (and per page of the primary key when checking every row).
   * @defaultValue 1000
   */
  batch?: number;
  /**
   * Mark the parents found drifted (`mark()`, never a direct write), so the drain recomputes them.
   * @defaultValue false
   */
  repair?: boolean;
  /**
   * Pause before a drifted-looking parent is compared again, so that a recompute that just
   * finished, or a mark still on its way from another process, is not taken for drift.
   * @defaultValue the Coalescer's `markTimeoutMs` (1000)
   */
  recheckMs?: number;
  /** Called after each batch with the running totals. */
  onProgress?: (progress: VerifyProgress) => void;
}

/** Running totals of a verify. */
export interface VerifyProgress {
  /** Parents compared so far. */
  checked: number;
  /** Parents confirmed drifted so far (confirmation lags the comparison by `recheckMs`). */
  drifted: number;
  /** Parents skipped so far (a recompute pending or running). */
  skipped: number;
  /** Parents to check, when known. */
  total: number;
}

/** One derived field found different from what its children say. */
export interface DriftExample {
  /** The parent's id. */
  id: ParentId;
  /** The parent property that differs. */
  field: string;
  /**
   * Its value in the parent's row. Both values are given as the column's type holds them:
   * integers and floating-point numbers as numbers, decimals as exact text (`"12.50"`),
   * date-times as Dates, dates as `YYYY-MM-DD`, times and text as strings, booleans, or null.
   */
  stored: unknown;
  /** What its children say it should be, the same way as `stored`. */
  expected: unknown;
}

/** What a verify found. */
export interface VerifyResult {
  /** The parent type verified. */
  parent: string;
  /** Parents compared (ids without a row are not counted). */
  checked: number;
  /**
   * Parents whose stored fields differ from the expected ones, the same way on two looks a pause
   * apart, while the drain had no business with them.
   */
  drifted: number;
  /**
   * Parents that differed but were pending, settling, in flight, waiting to retry or marked
   * meanwhile, or whose children or fields changed between the two looks: a recompute is coming
   * or has just run, so they are not drift.
   */
  skipped: number;
  /** The first 20 drifted fields. */
  examples: DriftExample[];
  /** Drifted parents marked for a recompute (`repair`). */
  repaired: number;
  /** How long the verify took, in ms of the Coalescer's clock. */
  durationMs: number;
}

/** What a verify needs from the coalescer. */
export interface VerifyDeps {
  readonly dataSource: DataSource;
  readonly registry: Registry;
  readonly reads: Pick<Reads, 'busy'>;
  readonly mark: (parent: string, ids: ParentId[]) => Promise<number>;
  readonly recheckMs: number;
  readonly clock: () => number;
  /** Of the members, those whose marks wait in the outbox (Redis was away): busy as well. */
  readonly kept?: (members: readonly string[]) => Promise<Set<string>>;
}

/** Examples kept in a result. */
export const MAX_EXAMPLES = 20;

/** A parent that differs: its member, its id and the fields that differ. */
interface Candidate {
  readonly member: string;
  readonly id: ParentId;
  readonly diffs: DriftExample[];
}

function checkOptions(o: VerifyOptions): void {
  const int = (name: string, value: number | undefined, min: number, max: number): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
      throw new ConfigError(`invalid verify option "${name}" = ${String(value)}: expected an integer from ${min} to ${max}`);
    }
  };
  int('batch', o.batch, 1, 100_000);
  int('sample', o.sample, 1, 10_000_000);
  int('recheckMs', o.recheckMs, 0, 600_000);
  if (o.ids !== undefined && !Array.isArray(o.ids))
    throw new ConfigError('invalid verify option "ids": expected an array of ids');
  if (o.ids !== undefined && o.sample !== undefined) throw new ConfigError('verify: give ids or sample, not both');
}

/**
 * Compares the stored derived fields of a parent type with what its aggregates (or its
 * `expected`) compute, batch by batch. Safe while writes and drains go on: a parent that differs
 * is checked in Redis after the comparison, and compared again after a pause; only a parent that
 * differs the same way both times while nothing is pending or running for it counts as drift.
 */
export async function verifyParent(deps: VerifyDeps, parent: ParentType, options: VerifyOptions = {}): Promise<VerifyResult> {
  checkOptions(options);
  if (!parent.aggregates && !parent.expected) {
    throw new RegistrationError(
      `verify(): parent ${parent.name} has neither aggregates nor expected; declare aggregates, or give expected(ids, manager) in its options`,
    );
  }
  const started = deps.clock();
  const batch = options.batch ?? 1000;
  const result: VerifyResult = {
    parent: parent.name,
    checked: 0,
    drifted: 0,
    skipped: 0,
    examples: [],
    repaired: 0,
    durationMs: 0,
  };
  const pages = await pagesOf(deps.dataSource, parent, options, batch);
  const rechecks = new Rechecks(deps, parent, options, result, options.recheckMs ?? deps.recheckMs, batch);
  const progress = (): void =>
    options.onProgress?.({
      checked: result.checked,
      drifted: result.drifted,
      skipped: result.skipped,
      total: Math.max(pages.total, result.checked),
    });
  for await (const ids of pages.ids()) {
    const first = await compare(deps, parent, ids);
    result.checked += first.found;
    // Redis is asked after the SQL read: a change committed before that read has sent its mark
    // (or is sending it), and a recompute running during it still holds its lease.
    if (first.differ.length > 0) rechecks.add(await notBusy(deps, first.differ, result));
    await rechecks.due(false);
    progress();
  }
  await rechecks.due(true);
  progress();
  result.durationMs = deps.clock() - started;
  return result;
}

/**
 * Parents that differed once, waiting for their second look. The pause runs while the next
 * batches are compared, so a verify under constant writes does not wait `recheckMs` per batch;
 * at most a few batches' worth wait at once (memory stays bounded).
 */
class Rechecks {
  private readonly queue: { at: number; candidates: Candidate[] }[] = [];
  private waiting = 0;

  constructor(
    private readonly deps: VerifyDeps,
    private readonly parent: ParentType,
    private readonly options: VerifyOptions,
    private readonly result: VerifyResult,
    private readonly pauseMs: number,
    private readonly batch: number,
  ) {}

  add(candidates: Candidate[]): void {
    if (candidates.length === 0) return;
    this.queue.push({ at: Date.now() + this.pauseMs, candidates });
    this.waiting += candidates.length;
  }

  /** Looks again at the candidates whose pause is over (all of them when `all`, waiting if need be). */
  async due(all: boolean): Promise<void> {
    for (let head = this.queue[0]; head; head = this.queue[0]) {
      const overdue = head.at <= Date.now();
      if (!all && !overdue && this.waiting <= 4 * this.batch) return;
      this.queue.shift();
      this.waiting -= head.candidates.length;
      if (!overdue) await sleep(head.at - Date.now());
      await this.confirm(head.candidates);
    }
  }

  private async confirm(calm: Candidate[]): Promise<void> {
    const { deps, parent, result } = this;
    const again = await compare(
      deps,
      parent,
      calm.map((c) => c.id),
    );
    // Drift is a difference that stays put. Children or stored fields that changed between the
    // two looks mean writes and recomputes are under way for that parent: skipped, like a busy one.
    const before = new Map(calm.map((c) => [c.member, c]));
    const steady = again.differ.filter((c) => {
      const first = before.get(c.member);
      return first !== undefined && sameDiffs(first.diffs, c.diffs);
    });
    result.skipped += again.differ.length - steady.length;
    const drifted = await notBusy(deps, steady, result);
    if (drifted.length === 0) return;
    result.drifted += drifted.length;
    for (const c of drifted) {
      for (const d of c.diffs) if (result.examples.length < MAX_EXAMPLES) result.examples.push(d);
    }
    if (this.options.repair) {
      result.repaired += await deps.mark(
        parent.name,
        drifted.map((c) => c.id),
      );
    }
  }
}

function sameDiffs(a: readonly DriftExample[], b: readonly DriftExample[]): boolean {
  return (
    a.length === b.length &&
    a.every((d, i) => {
      const e = b[i];
      return e !== undefined && e.field === d.field && sameValue(d.stored, e.stored) && sameValue(d.expected, e.expected);
    })
  );
}

async function notBusy(deps: VerifyDeps, candidates: readonly Candidate[], result: VerifyResult): Promise<Candidate[]> {
  // Any epoch: after a Redis data loss an absent member is stale for real, and reported.
  const reply = await deps.reads.busy(
    candidates.map((c) => c.member),
    '',
  );
  const kept = deps.kept ? await deps.kept(candidates.map((c) => c.member)) : new Set<string>();
  const busy =
    reply === 'lost' ? candidates.map(() => true) : reply.busy.map((b, i) => b || kept.has(candidates[i]?.member ?? ''));
  result.skipped += busy.filter(Boolean).length;
  return candidates.filter((_c, i) => !busy[i]);
}

/** One comparison of `ids`: how many rows were found, and those that differ. */
async function compare(deps: VerifyDeps, parent: ParentType, ids: ParentId[]): Promise<{ found: number; differ: Candidate[] }> {
  const manager = deps.dataSource.manager;
  const differ = new Map<string, Candidate>();
  const found = new Set<string>();
  const add = (rawId: unknown, field: string, type: ValueType, stored: unknown, expected: unknown): void => {
    const member = deps.registry.encode(parent, rawId);
    let c = differ.get(member);
    if (!c) {
      c = { member, id: deps.registry.idOf(parent, rawId), diffs: [] };
      differ.set(member, c);
    }
    // Both values as the column holds them: never a number beside the same number as text.
    const [s, e] = asColumnValues(stored, expected, type);
    c.diffs.push({ id: c.id, field, stored: s, expected: e });
  };
  if (parent.aggregates) {
    const fields = parent.aggregates.fields;
    for (const row of await parent.aggregates.compare(manager, ids)) {
      found.add(deps.registry.encode(parent, row.id));
      fields.forEach((f, i) => {
        if (!sameValue(row.stored[i], row.expected[i], f.type, f.value))
          add(row.id, f.field, f.type, row.stored[i], row.expected[i]);
      });
    }
  }
  if (parent.expected) {
    const key = parent.primary.propertyPath;
    const [rows, expected] = await Promise.all([
      manager.getRepository<ObjectLiteral>(parent.metadata.target).find({ where: { [key]: In(ids) }, withDeleted: true }),
      parent.expected(ids, manager),
    ]);
    const byMember = new Map<string, Readonly<Record<string, unknown>>>();
    for (const [id, fields] of expected) byMember.set(deps.registry.encode(parent, id), fields);
    for (const row of rows) {
      const id: unknown = parent.primary.getEntityValue(row);
      const member = deps.registry.encode(parent, id);
      found.add(member);
      const fields = byMember.get(member);
      if (!fields) continue;
      for (const [field, value] of Object.entries(fields)) {
        const column = parent.metadata.findColumnWithPropertyPathStrict(field);
        if (!column) {
          const known = parent.metadata.columns.map((c) => c.propertyPath).join(', ');
          throw new RegistrationError(
            `verify(): expected() of ${parent.name} returned field "${field}", which is not a column property (properties: ${known})`,
          );
        }
        const stored: unknown = column.getEntityValue(row);
        const type = columnType(deps.dataSource, column);
        if (!sameValue(stored, value, type)) add(id, field, type, stored, value);
      }
    }
  }
  return { found: found.size, differ: [...differ.values()] };
}

/** The ids to check, as batches: given, sampled, or every row by keyset pagination. */
async function pagesOf(
  dataSource: DataSource,
  parent: ParentType,
  o: VerifyOptions,
  batch: number,
): Promise<{ total: number; ids(): AsyncIterable<ParentId[]> }> {
  const repo = dataSource.getRepository<ObjectLiteral>(parent.metadata.target);
  const key = `p.${parent.primary.propertyPath}`;
  const chunked = (all: readonly ParentId[]) => ({
    total: all.length,
    async *ids() {
      for (let i = 0; i < all.length; i += batch) yield all.slice(i, i + batch);
    },
  });
  if (o.ids) return chunked(o.ids);
  if (o.sample !== undefined) {
    const random = dataSource.options.type === 'postgres' ? 'RANDOM()' : 'RAND()';
    const rows = await repo
      .createQueryBuilder('p')
      .withDeleted()
      .select(key, 'id')
      .orderBy(random)
      .limit(o.sample)
      .getRawMany<{ id: ParentId }>();
    return chunked(rows.map((r) => r.id));
  }
  const total = await repo.createQueryBuilder('p').withDeleted().getCount();
  return {
    total,
    async *ids() {
      // Keyset pagination: memory stays one batch however large the table.
      let last: unknown;
      for (;;) {
        const qb = repo.createQueryBuilder('p').withDeleted().select(key, 'id').orderBy(key, 'ASC').limit(batch);
        if (last !== undefined) qb.where(`${key} > :last`, { last });
        const rows = await qb.getRawMany<{ id: ParentId }>();
        if (rows.length === 0) return;
        yield rows.map((r) => r.id);
        last = rows[rows.length - 1]?.id;
        if (rows.length < batch) return;
      }
    },
  };
}
