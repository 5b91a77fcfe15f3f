// Everything tests share: databases, coalescers, Redis helpers, the overlap tracker, entities and waits.
export * from './db';
export * from './coalescers';
export * from './redis';
export * from './tracker';
export * from './entities';
export { waitFor } from './wait';
export { runCli, type CliRun } from './cli';
export { runMigration, marksSince, lastRow, heat, type Migration } from './outbox';
