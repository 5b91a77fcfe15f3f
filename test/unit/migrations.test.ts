import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { coalesceMigrations } from '../../migrations';

const folder = join(__dirname, '../../migrations');

// migrations/index.ts lists its migrations by hand: this keeps that list complete.
describe('coalesceMigrations', () => {
  const files = readdirSync(folder)
    .filter((file) => file !== 'index.ts')
    .sort();

  it('holds only <13-digit timestamp>-<Name>.ts files', () => {
    for (const file of files) expect(file).toMatch(/^\d{13}-[A-Za-z0-9]+\.ts$/);
  });

  it('lists every migration of the folder once, oldest first, named <Name><timestamp>', async () => {
    const expected: string[] = [];
    for (const file of files) {
      const [, timestamp, name] = /^(\d{13})-([A-Za-z0-9]+)\.ts$/.exec(file) ?? [];
      const exported = (await import(join(folder, file))) as Record<string, unknown>;
      const className = `${name}${timestamp}`;
      expect(Object.keys(exported), file).toEqual([className]);
      expected.push(className);
    }
    const listed = coalesceMigrations.map((migration) => migration.name);
    expect(listed).toEqual(expected);
    // TypeORM records a migration under its `name` property when it has one.
    expect(coalesceMigrations.map((migration) => new migration().name ?? migration.name)).toEqual(expected);
  });
});
