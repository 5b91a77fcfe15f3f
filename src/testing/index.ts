// typeorm-coalesce/testing: helpers for a host's integration tests, on the public API of the Coalescer.
export { drainUntilIdle, NotIdleError } from './drain-until-idle';
export type { DrainUntilIdleOptions, IdleLeft, IdleTotals } from './drain-until-idle';
export { assertNoDrift, DriftError } from './no-drift';
