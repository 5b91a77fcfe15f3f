import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { coalesceMigrations } from '../../migrations';
import { CoalesceModule } from '../../src/nestjs';
import { Comment, Post } from './blog.entities';
import { BlogService } from './blog.service';
import { HealthService } from './health.service';

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      useFactory: () => ({
        type: 'postgres',
        url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
        schema: process.env.BLOG_SCHEMA ?? 'public',
        entities: [Post, Comment],
        // An example's shortcut: use migrations in production. The library's tables come from its migrations.
        synchronize: true,
        migrations: coalesceMigrations,
        migrationsRun: true,
      }),
    }),
    TypeOrmModule.forFeature([Post, Comment]),
    // After TypeOrmModule: on shutdown the Coalescer closes before the DataSource is destroyed.
    // No `configure`: the entities declare their aggregates (@Aggregate on Post).
    CoalesceModule.forRootAsync({
      useFactory: () => ({
        redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
        namespace: process.env.BLOG_NAMESPACE ?? 'blog',
      }),
    }),
    TerminusModule,
  ],
  providers: [BlogService, HealthService],
})
export class AppModule {}
