// Compiles TypeScript to dist/ and copies the Lua scripts and the dashboard's page beside the compiled code.
const { execFileSync } = require('node:child_process');
const { chmodSync, cpSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
// From scratch: a file moved or removed in src leaves nothing behind in dist.
rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});
cpSync(join(root, 'src/redis/scripts'), join(root, 'dist/src/redis/scripts'), { recursive: true });
cpSync(join(root, 'src/dashboard/static'), join(root, 'dist/src/dashboard/static'), { recursive: true });
chmodSync(join(root, 'dist/src/cli/main.js'), 0o755);
