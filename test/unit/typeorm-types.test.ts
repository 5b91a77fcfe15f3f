import { describe, expect, it } from 'vitest';
import type { QueryRunner } from 'typeorm';
import { MysqlQueryRunner } from 'typeorm/driver/mysql/MysqlQueryRunner';
import { PostgresQueryRunner } from 'typeorm/driver/postgres/PostgresQueryRunner';
import { awaitsBeforeQuery } from '../../src/typeorm-types';

// The shapes of TypeORM's compiled query(): 0.3.18 to 0.3.22 broadcast beforeQuery without
// waiting for it; 0.3.23+ and 1.x wait.
class Late {
  broadcaster = { broadcastBeforeQueryEvent: (_r: unknown, _q: string) => undefined };
  async query(query: string): Promise<void> {
    const result = {};
    this.broadcaster.broadcastBeforeQueryEvent(result, query);
    await Promise.resolve();
  }
}
class Waits {
  broadcaster = { broadcast: async (_e: string, _q: string) => undefined };
  async query(query: string): Promise<void> {
    await this.broadcaster.broadcast('BeforeQuery', query);
  }
}

describe('awaitsBeforeQuery', () => {
  it('tells the TypeORM versions that send a statement before its beforeQuery promises settle', () => {
    expect(awaitsBeforeQuery(new Late() as unknown as QueryRunner)).toBe(false);
    expect(awaitsBeforeQuery(new Waits() as unknown as QueryRunner)).toBe(true);
  });

  it('finds that the installed TypeORM waits (the suite runs on 1.x and the latest 0.3)', () => {
    for (const runner of [PostgresQueryRunner, MysqlQueryRunner]) {
      expect(awaitsBeforeQuery(Object.create(runner.prototype) as QueryRunner), runner.name).toBe(true);
    }
  });
});
