export { Coalescer } from './coalescer';
export type { CoalescerEvents, CoalescerStats, DeadLetters, HotParent } from './coalescer';
export type { CoalescerOptions } from './config';
export type { ParentCaptureOptions } from './registry/model';
export type { CoalesceLogger, LogFn } from './log';
export { humanLogger } from './log';
export { guardPostgresPool } from './db/pool-guard';
export { DEFAULTS } from './config';
export type {
  CaptureMode,
  ChildOptions,
  EntityClass,
  ExpectedValues,
  ParentId,
  ParentOptions,
  Priority,
  RecomputeContext,
} from './registry/model';
export type { MigrationClass, MigrationFormat, TriggerMigrationOptions, TriggerMigrationSource } from './triggers/migrations';
export type { TriggerStatements } from './triggers/spec';
export { avg, count, max, min, sum } from './aggregates/spec';
export type { AggregateKind, AggregateOptions, AggregateSpec, ChildTarget } from './aggregates/spec';
export { Aggregate, Coalesced } from './registry/decorators';
export type { CoalescedOptions } from './registry/decorators';
export type { DriftExample, VerifyOptions, VerifyProgress, VerifyResult } from './verify/verifier';
export type { DrainOptions, DrainResult, FailedEvent, RecomputedEvent } from './drain/drainer';
export type { RetryOptions } from './drain/backoff';
export type { DeadEntry } from './redis/records';
export type { RedisClient } from './redis/scripts';
export type { Housework } from './ops/housekeeper';
export type { LiveEvent, Subscription } from './fresh/events';
export type { FreshOptions } from './fresh/fresh';
export type { ParentState } from './fresh/state';
export { Runner, RUNNER_DEFAULTS } from './runner/runner';
export type { RunnerCounts, RunnerEvents, RunnerOptions, RunnerStatus, TickEvent } from './runner/runner';
export { coalescerMetrics, serveMetrics } from './metrics/metrics';
export type { CoalescerMetrics, MetricsOptions, MetricsServer } from './metrics/metrics';
export { serveDashboard } from './dashboard/server';
export type { DashboardServer } from './dashboard/server';
export { DASHBOARD_DEFAULTS } from './dashboard/options';
export type { DashboardOptions } from './dashboard/options';
export type { DashboardState, DeadFigure, FailedSample, Sample, SamplePoint, TypeFigure } from './dashboard/state';
export type { Activity, DrainedActivity, FailedActivity, RecomputedActivity } from './dashboard/activity';
export {
  CoalesceError,
  ConfigError,
  ConnectionError,
  FreshTimeoutError,
  LeaseLostError,
  MalformedMemberError,
  ParentDeadError,
  RecomputeTimeoutError,
  RegistrationError,
  StoppingError,
} from './errors';
