export { Coalescer } from './coalescer';
export type { CoalescerEvents, CoalescerStats, DeadLetters, HotParent } from './coalescer';
export type { CoalescerOptions } from './config';
export type { ParentCaptureOptions } from './capture/derived';
export type { CoalesceLogger, LogFn } from './log';
export { humanLogger } from './log';
export { guardPostgresPool } from './db/pool-guard';
export { DEFAULTS } from './config';
export type { CaptureMode, ChildOptions, ExpectedValues, ParentId, ParentOptions, Priority, RecomputeContext } from './registry';
export type { MigrationClass, MigrationFormat, TriggerMigrationOptions, TriggerMigrationSource } from './capture/triggers';
export type { TriggerStatements } from './capture/trigger-sql';
export { avg, count, max, min, sum } from './aggregates/spec';
export type { AggregateKind, AggregateOptions, AggregateSpec } from './aggregates/spec';
export type { DriftExample, VerifyOptions, VerifyProgress, VerifyResult } from './verify/verifier';
export type { DrainOptions, DrainResult, FailedEvent, RecomputedEvent } from './drain/drainer';
export type { RetryOptions } from './drain/backoff';
export type { DeadEntry } from './redis/store';
export type { RedisClient } from './redis/scripts';
export type { Housework } from './housekeeping';
export type { LiveEvent, Subscription } from './events';
export type { FreshOptions, ParentState } from './fresh';
export { Runner, RUNNER_DEFAULTS } from './runner/runner';
export type { RunnerCounts, RunnerEvents, RunnerOptions, RunnerStatus, TickEvent } from './runner/runner';
export { coalescerMetrics, serveMetrics } from './metrics';
export type { CoalescerMetrics, MetricsOptions, MetricsServer } from './metrics';
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
