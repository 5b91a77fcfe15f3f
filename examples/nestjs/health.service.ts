import { Injectable } from '@nestjs/common';
import { HealthCheckService, type HealthCheckResult } from '@nestjs/terminus';
import { CoalesceHealthIndicator } from '../../src/nestjs';

/** What a `@Get('health')` controller would return. */
@Injectable()
export class HealthService {
  constructor(
    private readonly health: HealthCheckService,
    private readonly coalesce: CoalesceHealthIndicator,
  ) {}

  check(): Promise<HealthCheckResult> {
    return this.health.check([() => this.coalesce.isHealthy('coalesce', { maxOldestPendingMs: 60_000 })]);
  }
}
