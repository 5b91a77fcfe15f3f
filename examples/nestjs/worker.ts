// The worker process: `node dist/examples/nestjs/worker.js`. Boots AppModule without HTTP,
// drains the namespace every second, stops gracefully on SIGINT/SIGTERM.
import { runWorker } from '../../src/nestjs';
import { AppModule } from './app.module';

runWorker(AppModule, { runner: { schedule: '* * * * * *' }, logger: ['error', 'warn'] }).then(
  (worker) => console.log(`worker: draining namespace "${worker.coalescer.namespace}"; SIGINT or SIGTERM stops it`),
  (error: unknown) => {
    console.error(`worker: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
