import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Test } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { Column, CreateDateColumn, Entity, ManyToOne, OneToMany, PrimaryGeneratedColumn, type DataSource } from 'typeorm';
import { Aggregate, Coalescer, count, max } from '../../src';
import { CoalesceModule } from '../../src/nestjs';
import { drainUntilIdle } from '../../src/testing';
import { coalesceMigrations } from '../../migrations';
import { databaseUrl, redisUrl, suffix } from '../support';
import { Logs, createSchema, dropSchema } from '../support/nest-helpers';

// A NestJS application whose derived columns are declared only on its entities: CoalesceModule in
// its imports, no `configure`, and they stay fresh.

@Entity({ name: 'nd_article' })
class Article {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 80 }) title!: string;
  @Column({ type: 'int', default: 0 })
  @Aggregate(count(() => Remark))
  remarkCount!: number;
  @Column({ type: 'timestamp', precision: 6, nullable: true })
  @Aggregate(max(() => Remark, 'createdAt'))
  lastRemarkAt!: Date | null;
  @OneToMany(() => Remark, (r) => r.article) remarks?: Remark[];
}

@Entity({ name: 'nd_remark' })
class Remark {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 200 }) body!: string;
  @ManyToOne(() => Article, (a) => a.remarks, { onDelete: 'CASCADE' }) article!: Article;
  @CreateDateColumn({ type: 'timestamp', precision: 6 }) createdAt!: Date;
}

describe('NestJS: aggregates declared on the entities, CoalesceModule without configure', () => {
  const schema = `t_nest_declared_${suffix()}`;
  beforeAll(() => createSchema(schema));
  afterAll(() => dropSchema(schema));

  it('registers the entities by their decorators and keeps their columns fresh', async () => {
    const logs = new Logs();
    const app = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: databaseUrl(),
          schema,
          entities: [Article, Remark],
          synchronize: true,
          migrations: coalesceMigrations,
          migrationsRun: true,
          extra: { options: `-c search_path=${schema}` },
        }),
        CoalesceModule.forRoot({ redis: redisUrl(), namespace: `nest-declared-${suffix()}`, logger: logs.coalesce }),
      ],
    })
      .setLogger(logs.nest)
      .compile();
    await app.init();
    try {
      const coalescer = app.get(Coalescer);
      expect(coalescer.registry.parentNames()).toEqual(['Article']);
      const ds = app.get<DataSource>(getDataSourceToken());
      const [a, b] = await ds.getRepository(Article).save([{ title: 'a' }, { title: 'b' }]);
      await ds.getRepository(Remark).save([
        { body: 'one', article: a },
        { body: 'two', article: a },
        { body: 'three', article: b },
      ]);
      await drainUntilIdle(coalescer, { timeoutMs: 20_000 });
      const rows = (await ds.query(
        `SELECT a.id, a."remarkCount" AS n, a."lastRemarkAt" = (SELECT max(r."createdAt") FROM nd_remark r WHERE r."articleId" = a.id) AS latest
           FROM nd_article a ORDER BY a.id`,
      )) as { id: number; n: number; latest: boolean }[];
      expect(rows).toEqual([
        { id: a!.id, n: 2, latest: true },
        { id: b!.id, n: 1, latest: true },
      ]);
      // Nothing said but, on a test Redis without persistence, that it has none.
      expect(logs.lines.filter((l) => !l.includes('Redis has no persistence'))).toEqual([]);
    } finally {
      await app.close();
    }
  });
});
