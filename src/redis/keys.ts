/**
 * Every Redis key of one namespace, built in one place. All keys share the hash tag `{namespace}`
 * so that the scripts, which touch several keys at once, work on Redis Cluster.
 */
export interface Keys {
  /** ZSET member -> score (priority base + heat): parents waiting to be recomputed. */
  readonly pending: string;
  /** ZSET member -> ms of the first mark since the parent's last recompute. */
  readonly since: string;
  /** ZSET member -> lease deadline (ms, server time): parents claimed by a worker. */
  readonly leases: string;
  /** HASH member -> claim record "token|score|due|generation"; kept while leased or waiting to retry. */
  readonly claims: string;
  /** HASH member -> heat of marks that arrived while the parent was leased or waiting to retry. */
  readonly dirty: string;
  /** HASH member -> ms of the first such mark. */
  readonly dirtyAt: string;
  /** ZSET member -> ms when a failed parent may be retried. */
  readonly delayed: string;
  /** HASH member -> failed attempts so far (expired leases included). */
  readonly attempts: string;
  /** ZSET member -> ms when the parent was dead-lettered. */
  readonly dead: string;
  /** HASH member -> JSON dead-letter record (error, attempts, score, since, at). */
  readonly deadInfo: string;
  /** LIST of recent waits (first mark -> recompute start, ms), newest first. */
  readonly waits: string;
  /** ZSET member -> ms by which it must be claimed (first mark + maxWaitMs of its type). */
  readonly due: string;
  /** ZSET member -> ms when its quiet period (settleMs) ends: parents held back from claims. */
  readonly settling: string;
  /** HASH member -> score (priority base + heat) of a settling parent. */
  readonly settleHeat: string;
  /**
   * ZSET member -> ms when its minimum interval ends: settling parents that were marked during
   * their recompute (minIntervalMs), so that a drain can end their wait early.
   */
  readonly cooling: string;
  /** HASH parent type -> "base|settleMs|maxWaitMs|minIntervalMs": how the scripts treat members of the type. */
  readonly policy: string;
  /** STRING: the namespace's epoch; its absence means Redis lost the namespace's data. */
  readonly epoch: string;
  /** STRING: counter of claim windows; each claim's fencing token is the next value. */
  readonly fence: string;
  /** HASH member -> generation of its last mark (from `fence`), while a recompute has not covered it. */
  readonly generations: string;
  /** HASH member -> generation the last acknowledged recompute covered, while newer marks wait. */
  readonly ackedGens: string;
  /**
   * HASH writer -> generation of its last mark: each process's marks leave their value here, so
   * a Redis that lost that process's last write shows it an older one.
   */
  readonly writers: string;
  /** STRING with an expiry: present while some process listens on the event channel. */
  readonly listening: string;
  /** HASH parent type -> last id marked by the rebuild that follows a Redis data loss. */
  readonly rebuild: string;
  /**
   * STRING with a day's expiry: present once a process of the namespace said that Redis' settings
   * may lose marks, so short-lived processes (each CLI command) do not say it again.
   */
  readonly settingsWarned: string;
}

/** Every key of a namespace, for `clear()`. */
export function allKeys(keys: Keys): string[] {
  return Object.values(keys) as string[];
}

/** The pub/sub channel of a namespace's events (acknowledgements, recomputes, failures, drains). */
export function eventChannel(namespace: string): string {
  return `{${namespace}}:events`;
}

const NAMESPACE = /^[A-Za-z0-9_.-]{1,64}$/;

/** True when `namespace` may be used as a key prefix. */
export function isValidNamespace(namespace: string): boolean {
  return NAMESPACE.test(namespace);
}

/** Builds the keys of `namespace`. */
export function keysFor(namespace: string): Keys {
  const k = (name: string): string => `{${namespace}}:${name}`;
  return Object.freeze({
    pending: k('pending'),
    since: k('since'),
    leases: k('leases'),
    claims: k('claims'),
    dirty: k('dirty'),
    dirtyAt: k('dirtyAt'),
    delayed: k('delayed'),
    attempts: k('attempts'),
    dead: k('dead'),
    deadInfo: k('deadInfo'),
    waits: k('waits'),
    due: k('due'),
    settling: k('settling'),
    settleHeat: k('settleHeat'),
    cooling: k('cooling'),
    policy: k('policy'),
    epoch: k('epoch'),
    fence: k('fence'),
    generations: k('generations'),
    ackedGens: k('ackedGens'),
    writers: k('writers'),
    listening: k('listening'),
    rebuild: k('rebuild'),
    settingsWarned: k('settingsWarned'),
  });
}
