import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster, Redis, Result } from 'ioredis';

/** A standalone Redis or a Redis Cluster: every namespace lives under one hash tag, so both work. */
export type RedisClient = Redis | Cluster;

interface ScriptDef {
  readonly name: string;
  readonly file: string;
  readonly keys: number;
}

/** Every script, one per file under scripts/, named `<verbNoun>-<numKeys>.lua`. */
export const SCRIPTS = {
  mark: { name: 'coalesceMarkParents', file: 'markParents-14.lua', keys: 14 },
  readWindow: { name: 'coalesceReadWindow', file: 'readWindow-4.lua', keys: 4 },
  claim: { name: 'coalesceClaimParents', file: 'claimParents-8.lua', keys: 8 },
  extend: { name: 'coalesceExtendLeases', file: 'extendLeases-2.lua', keys: 2 },
  ack: { name: 'coalesceAckParents', file: 'ackParents-17.lua', keys: 17 },
  fail: { name: 'coalesceFailParents', file: 'failParents-14.lua', keys: 14 },
  requeue: { name: 'coalesceRequeueHeld', file: 'requeueHeld-10.lua', keys: 10 },
  revive: { name: 'coalesceReviveDead', file: 'reviveDead-12.lua', keys: 12 },
  checkEpoch: { name: 'coalesceCheckEpoch', file: 'checkEpoch-4.lua', keys: 4 },
  busy: { name: 'coalesceBusyMembers', file: 'busyMembers-8.lua', keys: 8 },
  advanceRebuild: { name: 'coalesceAdvanceRebuild', file: 'advanceRebuild-1.lua', keys: 1 },
  promoteMembers: { name: 'coalescePromoteMembers', file: 'promoteMembers-3.lua', keys: 3 },
  purgeDead: { name: 'coalescePurgeDead', file: 'purgeDead-5.lua', keys: 5 },
} as const satisfies Record<string, ScriptDef>;

/** An argument of a script call: members may be raw bytes (a member that is not UTF-8). */
export type Arg = string | number | Buffer;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    coalesceMarkParents(...args: Arg[]): Result<[number, string, number], Context>;
    coalesceReadWindowBuffer(...args: Arg[]): Result<(Buffer | number)[], Context>;
    coalesceClaimParents(...args: Arg[]): Result<(string | number)[], Context>;
    coalesceExtendLeases(...args: Arg[]): Result<number[], Context>;
    coalesceAckParents(...args: Arg[]): Result<[number, number, number], Context>;
    coalesceFailParents(...args: Arg[]): Result<[number, number, number], Context>;
    coalesceRequeueHeld(...args: Arg[]): Result<[number, number], Context>;
    coalesceReviveDead(...args: Arg[]): Result<number, Context>;
    coalesceCheckEpoch(...args: Arg[]): Result<[string, string, number, number, string], Context>;
    coalesceBusyMembers(...args: Arg[]): Result<(number | string)[] | number, Context>;
    coalesceAdvanceRebuild(...args: Arg[]): Result<number, Context>;
    coalescePromoteMembers(...args: Arg[]): Result<number, Context>;
    coalescePurgeDead(...args: Arg[]): Result<number, Context>;
  }
}

const INCLUDE = /^--- @include "([A-Za-z]+)"$/m;
const sources = new Map<string, string>();

/** A script's source with its `--- @include "name"` lines replaced by includes/name.lua. */
export function scriptSource(file: string): string {
  let lua = sources.get(file);
  if (lua === undefined) {
    const dir = join(__dirname, 'scripts');
    lua = readFileSync(join(dir, file), 'utf8');
    for (let m = INCLUDE.exec(lua); m; m = INCLUDE.exec(lua)) {
      const included = readFileSync(join(dir, 'includes', `${m[1]}.lua`), 'utf8');
      // A function, not a string: the Lua holds `$'` and such, which replace() would expand.
      lua = lua.replace(m[0], () => included);
    }
    sources.set(file, lua);
  }
  return lua;
}

const defined = new WeakSet<RedisClient>();
/** Defines every script on `client` once (EVALSHA with ioredis' NOSCRIPT fallback). */
export function defineScripts(client: RedisClient): void {
  if (defined.has(client)) return;
  for (const def of Object.values(SCRIPTS)) {
    client.defineCommand(def.name, { numberOfKeys: def.keys, lua: scriptSource(def.file) });
  }
  defined.add(client);
}
