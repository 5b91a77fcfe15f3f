export { Coalescer } from './coalescer';
export type { CoalescerEvents, CoalescerStats, DeadLetters, HotParent } from './coalescer';
export type { CoalescerOptions } from './config';
export { DEFAULTS } from './config';
export type { ChildOptions, ExpectedValues, ParentId, ParentOptions, Priority, RecomputeContext } from './registry';
export { avg, count, max, min, sum } from './aggregates/spec';
export type { AggregateKind, AggregateOptions, AggregateSpec } from './aggregates/spec';
export type { DriftExample, VerifyOptions, VerifyProgress, VerifyResult } from './verify/verifier';
export type { DrainOptions, DrainResult, FailedEvent, RecomputedEvent } from './drain/drainer';
export type { RetryOptions } from './drain/backoff';
export type { DeadEntry } from './redis/store';
export { Runner, RUNNER_DEFAULTS } from './runner/runner';
export type { RunnerCounts, RunnerEvents, RunnerOptions, RunnerStatus, TickEvent } from './runner/runner';
export { coalescerMetrics, serveMetrics } from './metrics';
export type { CoalescerMetrics, MetricsOptions, MetricsServer } from './metrics';
export {
  CoalesceError,
  ConfigError,
  ConnectionError,
  MalformedMemberError,
  RecomputeTimeoutError,
  RegistrationError,
} from './errors';
