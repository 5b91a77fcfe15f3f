import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl, redisUrl, suffix } from '../support';

// The package as an adopter gets it: `npm pack`, installed from the tarball into scratch apps
// outside this repository (so nothing resolves from our node_modules), compiled by the app's own
// TypeScript with skipLibCheck false, then run against the test PostgreSQL and Redis.
// Needs a build (`npm run build`; `npm test` does it first). The apps' dependencies come from
// the npm cache (--prefer-offline) and the installed apps are kept between runs in the system's
// temporary folder, so a warm run only reinstalls the tarball.

const root = join(__dirname, '..', '..');
const fixtures = join(root, 'test', 'fixtures', 'adoption');
/** The library's migrations, oldest first: the outbox, then the epoch kept outside Redis. */
const migrationNames = ['CoalesceOutbox1732300000001', 'CoalesceEpoch1732300000002', 'CoalesceFence1796428800000'];
const lastMigration = migrationNames[migrationNames.length - 1] as string;

/** Versions our own lock file holds, so the npm cache already has them. */
const locked = (name: string): string => {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  const version = lock.packages[`node_modules/${name}`]?.version;
  if (!version) throw new Error(`package-lock.json has no ${name}`);
  return version;
};

interface Build {
  /** The TypeScript package (a folder under the app's node_modules). */
  typescript: string;
  /** `commonjs` resolves like NestJS's default project (node10: typesVersions); `node16` reads exports. */
  module: 'commonjs' | 'node16';
}

interface ScratchApp {
  name: string;
  dependencies: Record<string, string>;
  builds: Build[];
}

const APPS: ScratchApp[] = [
  {
    // The floor of our peer ranges (typeorm 0.3.17, ioredis 5.3.0) on the oldest TypeScript we support.
    // The latest 0.3 runs the whole suite in CI.
    name: 'typeorm-0.3.17',
    dependencies: {
      typeorm: '0.3.17',
      ioredis: '5.3.0',
      pg: locked('pg'),
      'reflect-metadata': locked('reflect-metadata'),
      '@types/node': locked('@types/node'),
      typescript: '4.9.5',
      typescript5: `npm:typescript@${locked('typescript')}`,
    },
    builds: [
      { typescript: 'typescript', module: 'commonjs' },
      { typescript: 'typescript5', module: 'node16' },
    ],
  },
  {
    // TypeORM 1.x's own declarations need TypeScript 5 (`export type *`): no 4.9 build here.
    name: `typeorm-${locked('typeorm')}`,
    dependencies: {
      typeorm: locked('typeorm'),
      ioredis: locked('ioredis'),
      pg: locked('pg'),
      'reflect-metadata': locked('reflect-metadata'),
      '@types/node': locked('@types/node'),
      typescript: locked('typescript'),
    },
    // NestJS's default project (module commonjs); node16 resolution is compiled by the 0.3 app.
    builds: [{ typescript: 'typescript', module: 'commonjs' }],
  },
];

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; resolves with its exit code and output whatever the code (timeouts reject). */
function sh(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }) {
  return new Promise<Output>((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && error.killed) return reject(new Error(`${command} ${args.join(' ')} timed out`));
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}

// TypeORM 0.3's CLI colours its output even into a pipe.
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
const plain = (text: string): string => text.replace(ANSI, '');

const describeOutput = (out: Output): string => `exit ${out.code}\n${out.stdout}\n${out.stderr}`.trim();

const buildDir = (build: Build): string => `dist-${build.typescript}-${build.module}`;

/** Installs the tarball (and, the first time, the app's dependencies) into the app's folder; returns npm's output. */
async function install(app: ScratchApp, dir: string, tarball: string): Promise<Output> {
  const stamp = join(dir, 'dependencies.json');
  const wanted = JSON.stringify(app.dependencies);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') !== wanted) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'adoption-app', version: '1.0.0', private: true, dependencies: app.dependencies }, null, 2),
  );
  const out = await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-progress', tarball], {
    cwd: dir,
    timeoutMs: 240_000,
  });
  if (out.code !== 0) throw new Error(`npm install in ${dir} failed: ${describeOutput(out)}`);
  writeFileSync(stamp, wanted);
  rmSync(join(dir, 'src'), { recursive: true, force: true });
  cpSync(fixtures, join(dir, 'src'), { recursive: true });
  return out;
}

/** npm's lines about install scripts (npm 11: "not yet covered by allowScripts") that name our package. */
const scriptNotices = (out: Output): string[] =>
  `${out.stdout}\n${out.stderr}`
    .split('\n')
    .filter((line) => /allowScripts|install-scripts|install scripts/i.test(line) && line.includes('typeorm-coalesce'));

/** Compiles the app as its owner would: strict, skipLibCheck false, decorators, no casts. */
async function compile(dir: string, build: Build): Promise<Output> {
  const tsconfig = `tsconfig.${build.typescript}-${build.module}.json`;
  const compilerOptions = {
    target: 'ES2021',
    module: build.module,
    ...(build.module === 'node16' ? { moduleResolution: 'node16' } : {}),
    lib: ['ES2022'],
    types: ['node'],
    strict: true,
    skipLibCheck: false,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    outDir: buildDir(build),
    rootDir: 'src',
  };
  writeFileSync(join(dir, tsconfig), JSON.stringify({ compilerOptions, include: ['src'] }, null, 2));
  return sh(process.execPath, [join('node_modules', build.typescript, 'bin', 'tsc'), '-p', tsconfig], {
    cwd: dir,
    timeoutMs: 180_000,
  });
}

async function withPg<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** The columns of `table` in `schema`, sorted. */
const columns = (schema: string, table: string): Promise<string[]> =>
  withPg(databaseUrl(), async (client) => {
    const result = await client.query<{ column_name: string }>(
      'SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY column_name',
      [schema, table],
    );
    return result.rows.map((row) => row.column_name);
  });

const tables = (schema: string): Promise<string[]> =>
  withPg(databaseUrl(), async (client) => {
    const result = await client.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
      [schema],
    );
    return result.rows.map((row) => row.table_name);
  });

describe('adoption: the packed tarball in scratch apps', () => {
  const home = join(tmpdir(), `typeorm-coalesce-adoption-${createHash('sha1').update(root).digest('hex').slice(0, 8)}`);
  const run = suffix();
  const schemas: string[] = [];
  const namespaces: string[] = [];
  let packDir = '';
  let packed: { files: { path: string }[] } = { files: [] };
  const prepared = new Map<string, { dir: string; installed: Output; compiled: Map<Build, Output> }>();

  beforeAll(async () => {
    for (const file of ['dist/src/index.js', 'dist/migrations/index.js', 'dist/ormconfig.js']) {
      if (!existsSync(join(root, file))) throw new Error(`${file} is missing: run \`npm run build\` before this test`);
    }
    packDir = mkdtempSync(join(tmpdir(), 'typeorm-coalesce-pack-'));
    const pack = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], {
      cwd: root,
      timeoutMs: 60_000,
    });
    if (pack.code !== 0) throw new Error(`npm pack failed: ${describeOutput(pack)}`);
    const [result] = JSON.parse(pack.stdout) as [{ filename: string; files: { path: string }[] }];
    packed = result;
    const tarball = join(packDir, result.filename);
    await Promise.all(
      APPS.map(async (app) => {
        const dir = join(home, app.name);
        const installed = await install(app, dir, tarball);
        const compiled = new Map<Build, Output>();
        // One compile at a time per app: two apps at once already fill two cores.
        for (const build of app.builds) compiled.set(build, await compile(dir, build));
        prepared.set(app.name, { dir, installed, compiled });
      }),
    );
  }, 420_000);

  afterAll(async () => {
    if (packDir) rmSync(packDir, { recursive: true, force: true });
    for (const schema of schemas) {
      await withPg(databaseUrl(), (client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
    }
    const redis = new Redis(redisUrl());
    for (const namespace of namespaces) {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `{${namespace}}*`, 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      if (keys.length > 0) await redis.del(...keys);
    }
    await redis.quit();
  });

  it('the tarball holds the compiled package and no install-time script; `npm pack` builds it', () => {
    const paths = packed.files.map((f) => f.path);
    for (const file of ['dist/src/index.js', 'dist/src/cli/main.js', 'dist/src/redis/scripts', 'dist/migrations/index.js']) {
      expect(
        paths.some((p) => p === file || p.startsWith(`${file}/`)),
        file,
      ).toBe(true);
    }
    expect(paths.filter((p) => p.startsWith('src/') || p.startsWith('test/') || p.endsWith('.map'))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    // npm runs these when it installs a package (prepare: from git or a tarball), and npm 11 asks
    // the installer to approve them; the build runs when the tarball is made instead.
    for (const script of ['preinstall', 'install', 'postinstall', 'prepare'])
      expect(manifest.scripts[script], script).toBeUndefined();
    expect(manifest.scripts.prepack).toBe(manifest.scripts.build);
  });

  describe.each(APPS)('$name', (app) => {
    const state = () => {
      const found = prepared.get(app.name);
      if (!found) throw new Error(`${app.name} was not prepared`);
      return found;
    };

    it('installs without a notice about install scripts (npm 11 allowScripts)', () => {
      expect(scriptNotices(state().installed)).toEqual([]);
    });

    it('installs one copy of typeorm and ioredis: ours are peers, never nested', () => {
      const { dir } = state();
      for (const peer of ['typeorm', 'ioredis', 'pg']) {
        expect(existsSync(join(dir, 'node_modules', 'typeorm-coalesce', 'node_modules', peer)), peer).toBe(false);
      }
      const installed = JSON.parse(readFileSync(join(dir, 'node_modules', 'typeorm', 'package.json'), 'utf8')) as {
        version: string;
      };
      expect(installed.version).toBe(app.dependencies.typeorm);
    });

    it.each(app.builds)('compiles with $typescript, module $module, skipLibCheck false', (build) => {
      const out = state().compiled.get(build);
      expect(out && describeOutput(out)).toBe('exit 0');
    });

    it('marks, drains and runs the library migration through dataSource.runMigrations()', async () => {
      const { dir } = state();
      const schema = `t_adoption_${app.name.replace(/\W/g, '_')}_${run}`;
      const namespace = `adopt-${run}-${app.name}`;
      schemas.push(schema);
      namespaces.push(namespace);
      await withPg(databaseUrl(), (client) => client.query(`CREATE SCHEMA "${schema}"`));
      const env = {
        ...process.env,
        DATABASE_URL: databaseUrl(),
        REDIS_URL: redisUrl(),
        APP_SCHEMA: schema,
        APP_NAMESPACE: namespace,
      };
      const build = app.builds[0] as Build;
      const out = await sh(process.execPath, [join(buildDir(build), 'main.js')], { cwd: dir, env, timeoutMs: 60_000 });
      expect(out.code, describeOutput(out)).toBe(0);
      const result = JSON.parse(out.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
      expect(result).toEqual({
        migrated: migrationNames,
        // Three orders marked by 30 saves in one transaction: three recomputes; then one by mark().
        recomputes: 4,
        recomputed: [3, 1],
        totals: [
          [45, 9],
          [55, 10],
          [55, 10],
        ],
        left: 0,
        badOption: expect.stringMatching(/invalid option "leaseMs" = 0/),
        errors: [],
      });
      expect(await tables(schema)).toEqual(expect.arrayContaining(['coalesce_outbox', 'coalesce_epoch']));

      // TypeORM's CLI loads the same migrations from the app's data-source file: the last one down, then up.
      const cli = (command: string) =>
        sh(
          process.execPath,
          [join('node_modules', 'typeorm', 'cli.js'), command, '-d', join(buildDir(build), 'data-source.js')],
          {
            cwd: dir,
            env,
            timeoutMs: 60_000,
          },
        );
      const revert = await cli('migration:revert');
      expect(revert.code, describeOutput(revert)).toBe(0);
      expect(plain(revert.stdout)).toMatch(new RegExp(`Migration ${lastMigration} has been\\s+reverted successfully`));
      // The last one adds the fence columns.
      expect(await columns(schema, 'coalesce_epoch')).toEqual(['epoch', 'namespace']);
      const up = await cli('migration:run');
      expect(up.code, describeOutput(up)).toBe(0);
      expect(plain(up.stdout)).toMatch(new RegExp(`Migration ${lastMigration} has been\\s+executed successfully`));
      expect(await columns(schema, 'coalesce_epoch')).toEqual(['epoch', 'fence', 'namespace']);
    });
  });

  it("the demo's DataSource (dist/ormconfig.js) works with TypeORM's CLI", async () => {
    const schema = `t_adoption_ormconfig_${run}`;
    schemas.push(schema);
    await withPg(databaseUrl(), (client) => client.query(`CREATE SCHEMA "${schema}"`));
    const url = new URL(databaseUrl());
    url.searchParams.set('options', `-c search_path=${schema}`);
    const out = await sh(
      process.execPath,
      [join('node_modules', 'typeorm', 'cli.js'), 'migration:run', '-d', join('dist', 'ormconfig.js')],
      { cwd: root, env: { ...process.env, DATABASE_URL: url.toString() }, timeoutMs: 60_000 },
    );
    expect(out.code, describeOutput(out)).toBe(0);
    expect(await tables(schema)).toEqual([
      'coalesce_epoch',
      'coalesce_outbox',
      'migrations',
      'shop_customer',
      'shop_order',
      'shop_order_line',
    ]);
  });
});
