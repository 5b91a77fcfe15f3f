import type { DataSource } from 'typeorm';
import type { CoalesceLogger as Logger } from '../log';
import type { ParentId, RecomputeContext } from '../registry/model';

/**
 * Recompute context whose signal and logger are made only when the recompute reads them:
 * most recomputes never do, and a drain makes hundreds of thousands of contexts.
 */
export class LazyContext implements RecomputeContext {
  private controller: AbortController | undefined;
  private child: Logger | undefined;
  private reason: unknown;

  constructor(
    private readonly dataSource: DataSource,
    private readonly parentLogger: Logger,
    private readonly parentName: string,
    private readonly ids: readonly ParentId[],
    readonly attempt: number,
    readonly fence: number,
  ) {}

  get manager(): DataSource['manager'] {
    return this.dataSource.manager;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason !== undefined) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  get logger(): Logger {
    this.child ??= this.parentLogger.child({ parent: this.parentName, ids: this.ids.length === 1 ? this.ids[0] : this.ids });
    return this.child;
  }

  /** Why the signal was aborted, if it was (the first reason wins). */
  get abortReason(): unknown {
    return this.reason;
  }

  abort(reason: unknown): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}
