// typeorm-coalesce/nestjs: a NestJS module, a health indicator and a worker entry, on the public
// API of the Coalescer. Needs @nestjs/common, @nestjs/core and @nestjs/typeorm (and
// @nestjs/terminus for the health indicator); `typeorm-coalesce` itself never loads them.
export { CoalesceModule } from './coalesce.module';
export { InjectCoalescer, getCoalescerToken, DEFAULT_COALESCER } from './tokens';
export type {
  CoalesceModuleAsyncOptions,
  CoalesceModuleIdentity,
  CoalesceModuleOptions,
  CoalesceModuleSettings,
} from './options';
export { CoalesceHealthIndicator } from './health';
export type { CoalesceHealthDetails, CoalesceHealthOptions, CoalesceHealthResult } from './health';
export { runWorker } from './worker';
export type { Worker, WorkerOptions } from './worker';
