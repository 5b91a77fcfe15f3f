import { StoppingError, errorMessage, quoteMember } from '../errors';
import type { FailEntry } from '../redis/records';
import type { ParentId, ParentType } from '../registry/model';
import { backoffMs } from './backoff';
import type { Outcome } from './invoke';
import type { Claim } from './leases';
import type { DrainParts, Round } from './parts';
import type { DrainResult, FailedEvent } from './types';

/** A claimed parent of a task, with its id. */
export interface Item {
  readonly claim: Claim;
  readonly id: ParentId;
}

/** Ends claims by how their recompute ended: acknowledged, failed (retried or dead), or given back. */
export class Settler {
  constructor(private readonly parts: DrainParts) {}

  /** Acknowledges, fails or gives back the items of one call, by how it ended. */
  async settle(parent: ParentType, items: readonly Item[], outcome: Outcome, started: number, round: Round): Promise<void> {
    const { hooks, keeper, clock, logger } = this.parts;
    const { result, acks, chained } = round;
    if (outcome.kind === 'ok' && hooks.beforeAck) {
      try {
        const pending = hooks.beforeAck(parent, () => items.map((i) => i.id));
        if (pending) for (const member of await pending) chained.add(member);
      } catch (error) {
        outcome = { kind: 'error', error };
      }
    }
    switch (outcome.kind) {
      case 'ok': {
        const now = clock.now();
        for (const { claim, id } of items) {
          result.recomputed += 1;
          const waitMs = claim.since === undefined ? undefined : started - claim.since;
          acks.add({ key: claim.key, token: claim.token, base: parent.base, waitMs }, claim);
          hooks.recomputed({ member: claim.member, parent: parent.name, id, waitMs, durationMs: now - started });
        }
        return;
      }
      case 'aborted': {
        // It stopped when told to, and wrote nothing: its parents go back with their heat,
        // no attempt counted (a lost lease is already someone else's).
        const held = items.map((i) => i.claim).filter((c) => !keeper.lost(c));
        result.released += await this.release(held).catch(() => 0);
        for (const i of items) keeper.drop(i.claim);
        if (!(outcome.reason instanceof StoppingError)) {
          logger.info({ members: items.map((i) => i.claim.member), reason: errorMessage(outcome.reason) }, 'recompute aborted');
        }
        return;
      }
      case 'error':
      case 'timeout':
        await this.fail(
          parent,
          items.map((i) => ({ claim: i.claim, id: i.id, error: outcome.error })),
          result,
        );
        return;
    }
  }

  /** Gives claims back to pending (checked by token) and stops keeping them; returns how many went back. */
  async release(claims: readonly Claim[]): Promise<number> {
    if (claims.length === 0) return 0;
    const { keeper, outcomes, clock } = this.parts;
    for (const c of claims) keeper.end(c);
    try {
      return await outcomes.release(
        claims.map((c) => ({ key: c.key, token: c.token })),
        clock.now(),
      );
    } finally {
      for (const c of claims) keeper.drop(c);
    }
  }

  /** Records failed recomputes (`parent` undefined: members nothing can recompute, dead-lettered at once). */
  async fail(
    parent: ParentType | undefined,
    failures: readonly { claim: Claim; id?: ParentId; error: unknown }[],
    result: DrainResult,
  ): Promise<void> {
    const { keeper, outcomes, clock, logger, settings, hooks } = this.parts;
    const now = clock.now();
    const entries: FailEntry[] = [];
    const events: FailedEvent[] = [];
    for (const { claim, id, error } of failures) {
      const attempt = claim.attempts + 1;
      // A member that cannot be decoded will never succeed: dead-letter it at once.
      const dead = !parent || attempt >= settings.retry.attempts;
      const retryAt = dead ? undefined : now + backoffMs(attempt, settings.retry);
      entries.push({ key: claim.key, token: claim.token, retryAt, error: errorMessage(error), base: parent?.base ?? 0 });
      events.push({ member: claim.member, parent: parent?.name, id, error, attempt, dead, retryAt });
    }
    result.failed += failures.length;
    for (const f of failures) keeper.end(f.claim);
    try {
      const { dead, superseded } = await outcomes.fail(entries, now);
      result.deadLettered += dead;
      result.superseded += superseded;
    } catch (error) {
      // The leases expire; the parents come back to pending.
      logger.error({ err: errorMessage(error), members: events.map((e) => e.member) }, 'could not record failed recomputes');
    } finally {
      for (const f of failures) keeper.drop(f.claim);
    }
    for (const event of events) {
      logger.warn(
        {
          member: event.member.length > 200 ? quoteMember(event.member) : event.member,
          attempt: event.attempt,
          dead: event.dead,
          retryAt: event.retryAt,
          err: errorMessage(event.error),
        },
        event.dead ? 'recompute failed; parent dead-lettered' : 'recompute failed; will retry',
      );
      hooks.failed(event);
    }
  }
}
