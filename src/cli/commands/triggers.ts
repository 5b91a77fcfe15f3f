import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { MigrationFormat } from '../../triggers/migrations';
import { closeApp, loadApp, UsageError } from '../app';

interface TriggersOptions {
  out: string;
  name?: string;
  js?: boolean;
  drop?: boolean;
}

/**
 * `coalesce triggers [child...]`: writes the trigger migration of the named children (default:
 * every child registered with capture 'triggers') into the host's migrations folder, or with
 * `--drop` prints the statements that remove the triggers.
 */
export function addTriggersCommand(program: Command, print: (line: string) => void): void {
  program
    .command('triggers')
    .description(
      'Write a TypeORM migration that installs trigger capture (PostgreSQL, MySQL, MariaDB) on children, so raw SQL and other programs mark their parents too; ' +
        'with --drop, print the statements that remove it.',
    )
    .argument('[child...]', "child entity names, e.g. OrderLine (default: every child registered with capture 'triggers')")
    .option('--out <dir>', 'folder to write the migration into (made if missing)', '.')
    .option('--name <Name>', 'migration name; the class is <Name><timestamp>', 'CoalesceTriggers')
    .option(
      '--js',
      'write JavaScript (CommonJS, or an ES module when the folder\'s package.json says "type": "module") instead of TypeScript',
    )
    .option('--drop', "print the DROP statements instead (what the migration's down() runs)")
    .action(async (children: string[], o: TriggersOptions) => {
      const app = program.opts<{ app: string }>().app;
      // Only the registration is read: neither Redis nor the database needs to answer.
      const coalescer = await loadApp(app);
      try {
        const named = children.length > 0 ? children : undefined;
        if (o.drop) {
          for (const sql of coalescer.triggerStatements(named).down) print(`${sql};`);
          return;
        }
        const dir = resolve(o.out);
        const format: MigrationFormat = o.js ? (isEsmFolder(dir) ? 'esm' : 'cjs') : 'ts';
        const source = coalescer.triggerMigrationSource(named, { format, ...(o.name === undefined ? {} : { name: o.name }) });
        for (const name of named ?? []) {
          const triggered = coalescer.registry.triggerChildren().some((c) => c.child.name === name || c.child.tableName === name);
          if (!triggered) {
            process.stderr.write(
              `coalesce: note: ${name} is registered with capture 'subscriber': until it is registered with capture 'triggers', ` +
                'its changes made through TypeORM are marked twice (one more recompute, never a lost one)\n',
            );
          }
        }
        const path = join(dir, source.fileName);
        mkdirSync(dir, { recursive: true });
        try {
          writeFileSync(path, source.text, { flag: 'wx' });
        } catch (error) {
          throw new UsageError(`--out ${o.out}: cannot write ${path}: ${(error as Error).message}`, { cause: error });
        }
        print(path);
      } finally {
        await closeApp(coalescer);
      }
    });
}

/** Whether JavaScript in `dir` is an ES module: the nearest package.json says `"type": "module"`. */
function isEsmFolder(dir: string): boolean {
  for (let at = dir; ; at = dirname(at)) {
    const file = join(at, 'package.json');
    if (existsSync(file)) {
      try {
        return (JSON.parse(readFileSync(file, 'utf8')) as { type?: unknown }).type === 'module';
      } catch {
        return false;
      }
    }
    if (dirname(at) === at) return false;
  }
}
