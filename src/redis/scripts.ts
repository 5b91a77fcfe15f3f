import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import type { Keys } from './keys';
import { TIER } from './score';

/** A standalone Redis or a Redis Cluster: every namespace lives under one hash tag, so both work. */
export type RedisClient = Redis | Cluster;

/** An argument of a script call: members may be raw bytes (a member that is not UTF-8). */
export type Arg = string | number | Buffer;

/** A Redis client with the namespace's keys: what every module of redis/ works with. */
export interface Conn {
  readonly client: RedisClient;
  readonly keys: Keys;
}

/** Key names a caller binds to one of the namespace's keys at each call. */
type Slot = 'held';

interface ScriptDef {
  /** The command name the script is defined under. */
  readonly name: string;
  /** Its file under scripts/, `<verbNoun>-<numKeys>.lua`. */
  readonly file: string;
  /**
   * Its keys, in KEYS order: the same names, in the same order, as its header and its first line
   * of code. A name that is not a key of the namespace (`held`) is bound by the caller.
   */
  readonly keys: readonly (keyof Keys | Slot)[];
  /** Returns raw bytes (members that may not be UTF-8) instead of strings. */
  readonly buffers?: boolean;
}

/** The keys includes/markOne.lua reads and writes, in the order the scripts that lead with them take them. */
const MARK_ONE_KEYS = [
  'pending',
  'since',
  'claims',
  'dirty',
  'dirtyAt',
  'dead',
  'deadInfo',
  'due',
  'settling',
  'settleHeat',
  'policy',
] as const;

/**
 * Every script, one per file under scripts/. Each entry names its keys once; the script's header
 * and its first line (named locals from KEYS) list the same names in the same order, which
 * test/unit/scripts.test.ts checks.
 */
export const SCRIPTS = {
  mark: {
    name: 'coalesceMarkParents',
    file: 'markParents-15.lua',
    keys: [...MARK_ONE_KEYS, 'epoch', 'generations', 'fence', 'writers'],
  },
  readWindow: {
    name: 'coalesceReadWindow',
    file: 'readWindow-5.lua',
    keys: ['settling', 'settleHeat', 'pending', 'due', 'cooling'],
    buffers: true,
  },
  claim: {
    name: 'coalesceClaimParents',
    file: 'claimParents-8.lua',
    keys: ['pending', 'leases', 'claims', 'attempts', 'due', 'since', 'fence', 'generations'],
  },
  extend: { name: 'coalesceExtendLeases', file: 'extendLeases-2.lua', keys: ['leases', 'claims'] },
  ack: {
    name: 'coalesceAckParents',
    file: 'ackParents-18.lua',
    keys: [
      'leases',
      'claims',
      'attempts',
      'pending',
      'since',
      'dirty',
      'dirtyAt',
      'dead',
      'deadInfo',
      'due',
      'settling',
      'settleHeat',
      'policy',
      'waits',
      'generations',
      'ackedGens',
      'listening',
      'cooling',
    ],
  },
  fail: {
    name: 'coalesceFailParents',
    file: 'failParents-14.lua',
    keys: [
      'leases',
      'claims',
      'delayed',
      'attempts',
      'dead',
      'deadInfo',
      'pending',
      'since',
      'dirty',
      'dirtyAt',
      'due',
      'settling',
      'settleHeat',
      'policy',
    ],
  },
  requeue: {
    name: 'coalesceRequeueHeld',
    file: 'requeueHeld-10.lua',
    keys: ['held', 'claims', 'pending', 'since', 'dirty', 'dirtyAt', 'due', 'attempts', 'dead', 'deadInfo'],
  },
  revive: {
    name: 'coalesceReviveDead',
    file: 'reviveDead-12.lua',
    keys: [...MARK_ONE_KEYS, 'attempts'],
  },
  purge: {
    name: 'coalescePurgeDead',
    file: 'purgeDead-5.lua',
    keys: ['dead', 'deadInfo', 'attempts', 'generations', 'ackedGens'],
  },
  checkEpoch: {
    name: 'coalesceCheckEpoch',
    file: 'checkEpoch-5.lua',
    keys: ['epoch', 'policy', 'rebuild', 'fence', 'writers'],
  },
  busy: {
    name: 'coalesceBusyMembers',
    file: 'busyMembers-8.lua',
    keys: ['epoch', 'pending', 'settling', 'claims', 'dead', 'dirty', 'leases', 'fence'],
  },
  advanceRebuild: { name: 'coalesceAdvanceRebuild', file: 'advanceRebuild-1.lua', keys: ['rebuild'] },
  promote: { name: 'coalescePromoteMembers', file: 'promoteMembers-3.lua', keys: ['settling', 'settleHeat', 'pending'] },
  endCooling: {
    name: 'coalesceEndCooling',
    file: 'endCooling-4.lua',
    keys: ['cooling', 'settling', 'settleHeat', 'pending'],
  },
} as const satisfies Record<string, ScriptDef>;

/** A script of {@link SCRIPTS}. */
export type ScriptName = keyof typeof SCRIPTS;

type Invoke = (...args: Arg[]) => Promise<unknown>;

/** Keys a call binds to a script's slots. */
export type Bound = Partial<Record<Slot, keyof Keys>>;

/** The full argument list of a script call: its keys, by name, then `args`. */
function argv(conn: Conn, script: ScriptName, args: readonly Arg[], bound: Bound): Arg[] {
  const keys = (SCRIPTS[script] as ScriptDef).keys.map((k) => {
    const name = k === 'held' ? bound.held : k;
    if (name === undefined) throw new Error(`script ${script}: key "${k}" is not bound`);
    return conn.keys[name];
  });
  return [...keys, ...args];
}

function commandOf(script: ScriptName): string {
  const def: ScriptDef = SCRIPTS[script];
  return def.buffers ? `${def.name}Buffer` : def.name;
}

/** Runs `script` with its keys and `args`; the caller types the reply it documents. */
export function callScript<R>(conn: Conn, script: ScriptName, args: readonly Arg[], bound: Bound = {}): Promise<R> {
  const command = (conn.client as unknown as Record<string, Invoke>)[commandOf(script)] as Invoke;
  return command.apply(conn.client, argv(conn, script, args, bound)) as Promise<R>;
}

/** Queues `script` on a pipeline (or MULTI); its reply comes with the pipeline's. */
export function queueScript(
  pipeline: ChainableCommander,
  conn: Conn,
  script: ScriptName,
  args: readonly Arg[],
  bound: Bound = {},
): void {
  const command = (pipeline as unknown as Record<string, Invoke>)[commandOf(script)] as Invoke;
  command.apply(pipeline, argv(conn, script, args, bound));
}

const INCLUDE = /^--- @include "([A-Za-z]+)"$/m;
/** Constants the scripts share with TypeScript, written once here: `--- @const NAME` becomes `local NAME = value`. */
const CONSTANTS: Readonly<Record<string, number>> = { TIER };
const CONSTANT = /^--- @const ([A-Z_]+)$/m;
const sources = new Map<string, string>();

/**
 * A script's source: each `--- @include "name"` replaced by includes/name.lua once (a second
 * include of the same file, directly or through another include, is dropped) and each
 * `--- @const NAME` by the TypeScript value.
 */
export function scriptSource(file: string): string {
  let lua = sources.get(file);
  if (lua === undefined) {
    const dir = join(__dirname, 'scripts');
    const included = new Set<string>();
    lua = readFileSync(join(dir, file), 'utf8');
    for (let m = INCLUDE.exec(lua); m; m = INCLUDE.exec(lua)) {
      const name = m[1] as string;
      const body = included.has(name) ? '' : readFileSync(join(dir, 'includes', `${name}.lua`), 'utf8');
      included.add(name);
      // A function, not a string: the Lua holds `$'` and such, which replace() would expand.
      lua = lua.replace(m[0], () => body);
    }
    for (let m = CONSTANT.exec(lua); m; m = CONSTANT.exec(lua)) {
      const name = m[1] as string;
      const value = CONSTANTS[name];
      if (value === undefined) throw new Error(`${file}: unknown constant ${name}`);
      lua = lua.replace(m[0], `local ${name} = ${value}`);
    }
    sources.set(file, lua);
  }
  return lua;
}

const defined = new WeakSet<RedisClient>();
/** Defines every script on `client` once (EVALSHA with ioredis' NOSCRIPT fallback). */
export function defineScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  for (const def of Object.values(SCRIPTS) as ScriptDef[]) {
    client.defineCommand(def.name, { numberOfKeys: def.keys.length, lua: scriptSource(def.file) });
  }
  defined.add(client);
}
