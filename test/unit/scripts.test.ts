import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SCRIPTS, scriptSource } from '../../src/redis/scripts';
import { TIER } from '../../src/redis/score';

// Each script names its keys once, in the same order in three places: its header (`Keys:`), its
// first line of code (`local a, b = unpack(KEYS)`) and its entry in SCRIPTS, which is what the
// TypeScript call sites pass. A bare KEYS[n] anywhere would be a fourth place.

const dir = join(__dirname, '../../src/redis/scripts');

/** The names listed after `Keys:` in the header, up to a blank line or a parenthesized note. */
function headerKeys(lua: string): string[] {
  const at = lua.indexOf('Keys:');
  if (at < 0) return [];
  const lines = lua.slice(at + 'Keys:'.length).split('\n');
  const names: string[] = [];
  for (const [i, line] of lines.entries()) {
    const text = line.trim();
    if (i > 0 && (text === '' || text.startsWith('(') || text.startsWith('Args:'))) break;
    names.push(...text.split(/[,\s]+/).filter((n) => /^[A-Za-z]+$/.test(n)));
  }
  return names;
}

/** The names of `local a, b, c = unpack(KEYS)`. */
function localKeys(lua: string): string[] {
  const m = /local\s+([\w\s,]+?)\s*=\s*unpack\(KEYS\)/.exec(lua);
  return m ? (m[1] as string).split(',').map((n) => n.trim()) : [];
}

describe('the Lua scripts', () => {
  for (const [entry, def] of Object.entries(SCRIPTS)) {
    it(`${def.file} (${entry}) names the keys of its entry, in order, in its header and its first line`, () => {
      const lua = readFileSync(join(dir, def.file), 'utf8');
      expect(def.file).toMatch(new RegExp(`-${def.keys.length}\\.lua$`));
      expect(headerKeys(lua)).toEqual([...def.keys]);
      expect(localKeys(lua)).toEqual([...def.keys]);
      expect(scriptSource(def.file)).not.toMatch(/KEYS\[/);
    });
  }

  it('loads each include once, however many paths lead to it, and writes in the shared constants', () => {
    // ackParents includes markOne (which includes score) and claimRecord.
    const ack = scriptSource('ackParents-18.lua');
    expect(ack.match(/local function heatOf/g)).toHaveLength(1);
    expect(ack.match(/local function claimedBy/g)).toHaveLength(1);
    expect(ack).not.toMatch(/--- @include/);
    expect(ack).toContain(`local TIER = ${TIER}`);
    // requeueHeld includes score and claimRecord directly.
    const requeue = scriptSource('requeueHeld-10.lua');
    expect(requeue.match(/local function restore/g)).toHaveLength(1);
    expect(requeue).not.toMatch(/--- @const/);
  });

  it('parses the claim record in one place only', () => {
    for (const def of Object.values(SCRIPTS)) {
      const lua = readFileSync(join(dir, def.file), 'utf8');
      expect(lua, def.file).not.toMatch(/string\.match\(record/);
      expect(lua, def.file).not.toMatch(/\.\. '\|' \.\./);
    }
  });
});
