import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseUrl, redisUrl, suffix, waitFor } from '../support';

// The README's first app as a newcomer types it: the blocks marked `<!-- first-app: <file> -->`
// (src/app.ts, src/main.ts, tsconfig.json) and the commands block, plus the examples the docs
// mark `<!-- example: <file> -->`, written to a scratch folder outside this repository, compiled
// there by the project's TypeScript against the built package (`npm run build` first), and run
// against the test PostgreSQL (throwaway schemas, through DATABASE_URL) and Redis. The only
// change made to the code is its namespace, so that parallel runs never share one.

const root = join(__dirname, '..', '..');

interface Block {
  readonly file: string;
  readonly code: string;
}

/** The fenced blocks of a markdown file that follow `<!-- <tag>: <file> -->`. */
function markedBlocks(markdown: string, tag: string): Block[] {
  const blocks: Block[] = [];
  const pattern = new RegExp(`<!-- ${tag}: (\\S+) -->\\s*\\n\`\`\`\\w*\\n([\\s\\S]*?)\\n\`\`\`\\n`, 'g');
  for (const m of markdown.matchAll(pattern)) blocks.push({ file: m[1] as string, code: `${m[2] as string}\n` });
  return blocks;
}

interface Output {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a shell command line in `cwd`; resolves with its exit code and output (a timeout rejects). */
function sh(command: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Output> {
  return new Promise((resolve, reject) => {
    execFile('sh', ['-c', command], { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error?.killed) return reject(new Error(`${command}: timed out after ${timeoutMs} ms\n${stdout}\n${stderr}`));
      // A string code is a failure to start the shell at all; no number is an end by a signal.
      if (error && typeof error.code === 'string') return reject(error);
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

const show = (command: string, out: Output): string => `${command}: exit ${String(out.code)}\n${out.stdout}\n${out.stderr}`;

describe("the README's first app, as written", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const firstApp = markedBlocks(readme, 'first-app');
  const examples = [
    'docs/getting-started.md',
    'docs/guides/testing.md',
    'docs/operations/runner-and-cli.md',
    'docs/guides/entities.md',
  ].flatMap((doc) => markedBlocks(readFileSync(join(root, doc), 'utf8'), 'example'));
  const commands = (firstApp.find((b) => b.file === 'commands')?.code ?? '')
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '');
  const namespace = `readme-${suffix()}`;
  const schema = `t_readme_${suffix()}`;
  // The entities guide's blog has tables of the first app's names: a schema of its own.
  const entitiesSchema = `${schema}_entities`;
  let entitiesEnv: NodeJS.ProcessEnv = {};
  let dir = '';
  let env: NodeJS.ProcessEnv = {};
  let pg: Client;
  const children: ChildProcess[] = [];

  /** Posts whose derived columns differ from their comments, and the totals. */
  async function blogState(): Promise<{ posts: number; comments: number; wrong: number }> {
    const { rows } = await pg.query<{ posts: number; comments: number; wrong: number }>(
      `SELECT (SELECT count(*)::int FROM "${schema}".post) AS posts,
              (SELECT count(*)::int FROM "${schema}".comment) AS comments,
              (SELECT count(*)::int FROM "${schema}".post p
                WHERE p."commentCount" IS DISTINCT FROM (SELECT count(*) FROM "${schema}".comment c WHERE c."postId" = p.id)
                   OR p."lastCommentAt" IS DISTINCT FROM (SELECT max(c."createdAt") FROM "${schema}".comment c WHERE c."postId" = p.id)) AS wrong`,
    );
    return rows[0] as { posts: number; comments: number; wrong: number };
  }

  beforeAll(async () => {
    for (const file of ['dist/src/index.js', 'dist/migrations/index.js', 'dist/src/testing/index.js', 'dist/src/cli/main.js']) {
      if (!existsSync(join(root, file))) throw new Error(`${file} is missing: run \`npm run build\` before this test`);
    }
    dir = mkdtempSync(join(tmpdir(), 'typeorm-coalesce-readme-'));
    // The app's dependencies are this repository's copies: one typeorm, ioredis and pg, as the
    // package's peers want, and the package itself as the built repository.
    const modules = join(dir, 'node_modules');
    mkdirSync(join(modules, '.bin'), { recursive: true });
    // What the README has a newcomer install (the typeorm-coalesce, ioredis and pg of the README,
    // typeorm, reflect-metadata and typescript of getting started, and @types/node), nothing more.
    mkdirSync(join(modules, '@types'));
    for (const name of ['typeorm', 'reflect-metadata', 'pg', 'ioredis', 'typescript', '@types/node']) {
      symlinkSync(join(root, 'node_modules', name), join(modules, name));
    }
    symlinkSync(root, join(modules, 'typeorm-coalesce'));
    symlinkSync(join('..', 'typescript', 'bin', 'tsc'), join(modules, '.bin', 'tsc'));
    symlinkSync(join('..', 'typeorm-coalesce', 'dist', 'src', 'cli', 'main.js'), join(modules, '.bin', 'coalesce'));
    for (const { file, code } of [...firstApp, ...examples]) {
      if (file === 'commands') continue;
      const text = file === 'src/app.ts' ? code.replace(`namespace: 'blog'`, `namespace: '${namespace}'`) : code;
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    }
    // Runs the getting-started's hand-written recompute on every post of the app.
    writeFileSync(
      join(dir, 'src', 'check-by-hand.ts'),
      `import { Coalescer } from 'typeorm-coalesce';
import { Post, dataSource } from './app';
import { registerPostsByHand } from './by-hand';

async function main(): Promise<void> {
  await dataSource.initialize();
  const coalescer = new Coalescer({ dataSource, redis: process.env.REDIS_URL as string, namespace: '${namespace}-by-hand' });
  registerPostsByHand(coalescer);
  await dataSource.query('UPDATE post SET "commentCount" = 0, "lastCommentAt" = NULL');
  const ids = (await dataSource.getRepository(Post).find()).map((p) => p.id);
  await coalescer.mark(Post, ids);
  const result = await coalescer.drain();
  console.log(JSON.stringify({ posts: ids.length, recomputed: result.recomputed }));
  await coalescer.reset();
  await coalescer.close();
  await dataSource.destroy();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
`,
    );
    // Registers the entities guide's blog with entities(), saves authors, tags, posts and
    // comments through TypeORM, drains, and prints what the declared columns hold.
    writeFileSync(
      join(dir, 'src', 'check-entities.ts'),
      `import { DataSource } from 'typeorm';
import { Coalescer } from 'typeorm-coalesce';
import { coalesceMigrations } from 'typeorm-coalesce/migrations';
import { drainUntilIdle } from 'typeorm-coalesce/testing';
import { Author, Comment, Post, Tag } from './entities';

async function main(): Promise<void> {
  const dataSource = new DataSource({
    type: 'postgres',
    url: process.env.DATABASE_URL,
    entities: [Author, Post, Comment, Tag],
    migrations: coalesceMigrations,
    migrationsRun: true,
    synchronize: true,
  });
  await dataSource.initialize();
  const coalescer = new Coalescer({ dataSource, redis: process.env.REDIS_URL as string, namespace: '${namespace}-entities' });
  coalescer.entities([Post, Author]);
  await coalescer.attach();
  const ann = await dataSource.getRepository(Author).save({ name: 'ann' });
  const [news, misc] = await dataSource.getRepository(Tag).save([{ name: 'news' }, { name: 'misc' }]);
  const hello = await dataSource.getRepository(Post).save({ title: 'Hello', author: ann, tags: [news, misc] });
  const again = await dataSource.getRepository(Post).save({ title: 'Again', author: ann, tags: [misc] });
  await dataSource.getRepository(Comment).save([
    { postId: hello.id, body: 'a', approved: true },
    { postId: hello.id, body: 'b' },
    { postId: again.id, body: 'c', approved: true },
  ]);
  await drainUntilIdle(coalescer, { timeoutMs: 30_000 });
  const { postCount, commentCount } = await dataSource.getRepository(Author).findOneByOrFail({ id: ann.id });
  const posts = (await dataSource.getRepository(Post).find({ order: { id: 'ASC' } })).map((p) => ({
    title: p.title,
    commentCount: p.commentCount,
    approvedCount: p.approvedCount,
    tagCount: p.tagCount,
  }));
  console.log(JSON.stringify({ author: { postCount, commentCount }, posts }));
  await coalescer.reset();
  await coalescer.close();
  await dataSource.destroy();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
`,
    );
    pg = new Client({ connectionString: databaseUrl() });
    await pg.connect();
    await pg.query(`CREATE SCHEMA "${schema}"`);
    await pg.query(`CREATE SCHEMA "${entitiesSchema}"`);
    const url = new URL(databaseUrl());
    url.searchParams.set('options', `-c search_path=${schema}`);
    env = { ...process.env, DATABASE_URL: url.toString(), REDIS_URL: redisUrl() };
    url.searchParams.set('options', `-c search_path=${entitiesSchema}`);
    entitiesEnv = { ...env, DATABASE_URL: url.toString() };
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await pg?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pg?.query(`DROP SCHEMA IF EXISTS "${entitiesSchema}" CASCADE`);
    await pg?.end();
    const redis = new Redis(redisUrl());
    for (const ns of [namespace, `${namespace}-by-hand`, `${namespace}-entities`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `{${ns}}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
    await redis.quit();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has the marked blocks: two source files, a tsconfig, the commands, and the docs examples', () => {
    expect(firstApp.map((b) => b.file)).toEqual(['src/app.ts', 'src/main.ts', 'tsconfig.json', 'commands']);
    expect(firstApp[0]?.code.split(`namespace: 'blog'`)).toHaveLength(2);
    expect(examples.map((b) => b.file)).toEqual(['src/by-hand.ts', 'src/blog.test.ts', 'src/worker.ts', 'src/entities.ts']);
    expect(commands).toHaveLength(3);
    expect(commands[0]).toMatch(/node dist\/main\.js$/);
    expect(commands[1]).toMatch(/^npx coalesce --app dist\/app\.js status$/);
    expect(commands[2]).toMatch(/^npx coalesce --app dist\/app\.js run$/);
  });

  it('compiles and runs: the post holds its comment count and last comment time', async () => {
    const out = await sh(commands[0] as string, dir, env, 120_000);
    expect(out.code, show(commands[0] as string, out)).toBe(0);
    expect(out.stdout).toMatch(/commentCount: 2/);
    expect(await blogState()).toEqual({ posts: 1, comments: 2, wrong: 0 });
  }, 180_000);

  it('`coalesce status` reads the namespace', async () => {
    const out = await sh(commands[1] as string, dir, env);
    expect(out.code, show(commands[1] as string, out)).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`namespace\\s+${namespace}`));
    expect(out.stdout).toMatch(/pending\s+0/);
  });

  /**
   * Starts `command` (a long-running process: a runner), writes a comment by raw SQL (capture
   * cannot see it), marks its post with `coalesce mark`, waits for the process to recompute it,
   * and stops it with SIGTERM, which must end it with 0.
   */
  async function recomputesMarkedPost(
    command: string,
    args: string[],
    body: string,
    comments: number,
    what: string,
  ): Promise<void> {
    const child = spawn(command, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    const { rows } = await pg.query<{ id: number }>(`SELECT id FROM "${schema}".post ORDER BY id LIMIT 1`);
    const id = (rows[0] as { id: number }).id;
    await pg.query(`INSERT INTO "${schema}".comment ("postId", body) VALUES ($1, $2)`, [id, body]);
    const mark = await sh(`npx coalesce --app dist/app.js mark Post ${id}`, dir, env);
    expect(mark.code, show('mark', mark)).toBe(0);
    await waitFor(async () => (await blogState()).wrong === 0, `${what} to recompute post ${id}\n${output}`, 40_000);
    expect(await blogState()).toEqual({ posts: 1, comments, wrong: 0 });

    child.kill('SIGTERM');
    expect(await exited, output).toBe(0);
  }

  it('`coalesce run` recomputes a post marked by `coalesce mark` after a write capture cannot see, and stops on SIGTERM', async () => {
    // npx only finds the package's bin; run that bin directly so SIGTERM reaches it.
    const run = (commands[2] as string).replace(/^npx coalesce /, '').split(' ');
    await recomputesMarkedPost(join(dir, 'node_modules', '.bin', 'coalesce'), run, 'raw SQL', 3, 'the runner');
  }, 180_000);

  it("the runner guide's worker recomputes a marked post and stops on SIGTERM", async () => {
    await recomputesMarkedPost(process.execPath, ['dist/worker.js'], 'raw SQL again', 4, 'the worker');
  }, 180_000);

  it("getting started's hand-written recompute rebuilds every post", async () => {
    const out = await sh('node dist/check-by-hand.js', dir, env);
    expect(out.code, show('check-by-hand', out)).toBe(0);
    expect(JSON.parse(out.stdout.trim().split('\n').pop() ?? '')).toEqual({ posts: 1, recomputed: 1 });
    expect(await blogState()).toEqual({ posts: 1, comments: 4, wrong: 0 });
  }, 180_000);

  it("the entities guide's blog, registered by entities(), holds what its saves call for, the chained author included", async () => {
    const out = await sh('node dist/check-entities.js', dir, entitiesEnv);
    expect(out.code, show('check-entities', out)).toBe(0);
    expect(JSON.parse(out.stdout.trim().split('\n').pop() ?? '')).toEqual({
      author: { postCount: 2, commentCount: 3 },
      posts: [
        { title: 'Hello', commentCount: 2, approvedCount: 1, tagCount: 2 },
        { title: 'Again', commentCount: 1, approvedCount: 1, tagCount: 1 },
      ],
    });
    // Every post's last comment time, against its comments.
    const { rows } = await pg.query<{ wrong: number }>(
      `SELECT count(*)::int AS wrong FROM "${entitiesSchema}".post p
        WHERE p."lastCommentAt" IS DISTINCT FROM (SELECT max(c."createdAt") FROM "${entitiesSchema}".comment c WHERE c."postId" = p.id)`,
    );
    expect(rows[0]?.wrong).toBe(0);
  }, 180_000);

  it("the testing guide's test passes with Node's test runner", async () => {
    const out = await sh('node --test dist/blog.test.js', dir, env);
    expect(out.code, show('node --test', out)).toBe(0);
    expect(await blogState()).toEqual({ posts: 2, comments: 6, wrong: 0 });
  }, 180_000);
});
