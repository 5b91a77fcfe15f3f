import 'reflect-metadata';
import type { EntitySubscriberInterface } from 'typeorm';
import type { AfterQuery } from '../../src/typeorm-types';
import {
  Column,
  DeleteDateColumn,
  Entity,
  JoinColumn,
  JoinTable,
  ManyToMany,
  ManyToOne,
  OneToMany,
  PrimaryGeneratedColumn,
} from 'typeorm';
import pino, { type Logger } from 'pino';
import { Coalescer } from '../../src';
import { createTestDb, redisUrl, suffix, type Dialect, type TestDb } from './db';
import { dispose } from './coalescers';

// Every way a child's key can be declared and every orphan action, on one parent. Column types
// are explicit: the test transpiler emits no decorator metadata.

/** Parent of every line kind below. */
@Entity({ name: 'cp_order' })
export class CpOrder {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) customer!: string;
  @Column({ type: 'int', default: 0 }) total!: number;
  @Column({ name: 'line_count', type: 'int', default: 0 }) lineCount!: number;
  @OneToMany(() => CpRelLine, (l) => l.order, { cascade: true }) relLines?: CpRelLine[];
  @OneToMany(() => CpColLine, (l) => l.order, { cascade: true }) colLines?: CpColLine[];
  @OneToMany(() => CpDelLine, (l) => l.order, { cascade: true }) delLines?: CpDelLine[];
  @OneToMany(() => CpSoftLine, (l) => l.order, { cascade: true }) softLines?: CpSoftLine[];
  @OneToMany(() => CpPlainLine, (l) => l.order) plainLines?: CpPlainLine[];
}

/** Key only as a relation; orphans nullified (the default). */
@Entity({ name: 'cp_rel_line' })
export class CpRelLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) sku!: string;
  @Column({ type: 'int', default: 1 }) qty!: number;
  // onDelete: TypeORM 0.3 deletes the parent before its cascade-removed children.
  @ManyToOne(() => CpOrder, (o) => o.relLines, { nullable: true, onDelete: 'CASCADE' })
  @JoinColumn({ name: 'order_id' })
  order?: CpOrder | null;
}

/** Key as an explicit column beside the relation; orphans nullified. */
@Entity({ name: 'cp_col_line' })
export class CpColLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) sku!: string;
  @Column({ type: 'int', default: 1 }) qty!: number;
  @Column({ name: 'order_id', type: 'int', nullable: true }) orderId?: number | null;
  @ManyToOne(() => CpOrder, (o) => o.colLines, { nullable: true, onDelete: 'CASCADE' })
  @JoinColumn({ name: 'order_id' })
  order?: CpOrder | null;
}

/** Explicit key column; orphans deleted. */
@Entity({ name: 'cp_del_line' })
export class CpDelLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) sku!: string;
  @Column({ name: 'order_id', type: 'int', nullable: true }) orderId?: number | null;
  @ManyToOne(() => CpOrder, (o) => o.delLines, { nullable: true, orphanedRowAction: 'delete' })
  @JoinColumn({ name: 'order_id' })
  order?: CpOrder | null;
}

/** Key only as a relation; orphans soft-deleted. */
@Entity({ name: 'cp_soft_line' })
export class CpSoftLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) sku!: string;
  @ManyToOne(() => CpOrder, (o) => o.softLines, { nullable: true, orphanedRowAction: 'soft-delete' })
  @JoinColumn({ name: 'order_id' })
  order?: CpOrder | null;
  @DeleteDateColumn({ name: 'deleted_at', nullable: true }) deletedAt?: Date | null;
}

/** Key only as a relation, no cascade from the parent: TypeORM binds it by id alone. */
@Entity({ name: 'cp_plain_line' })
export class CpPlainLine {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) sku!: string;
  @ManyToOne(() => CpOrder, (o) => o.plainLines, { nullable: true })
  @JoinColumn({ name: 'order_id' })
  order?: CpOrder | null;
}

/** Many-to-many, both sides parents: a user's favourites count, a post's fans count. */
@Entity({ name: 'cp_user' })
export class CpUser {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) name!: string;
  // onDelete both ways: TypeORM 0.3 leaves the inverse side's junction key at NO ACTION.
  @ManyToMany(() => CpPost, (p) => p.fans, { onDelete: 'CASCADE' })
  @JoinTable({ name: 'cp_favorite', joinColumn: { name: 'user_id' }, inverseJoinColumn: { name: 'post_id' } })
  favorites?: CpPost[];
}

@Entity({ name: 'cp_post' })
export class CpPost {
  @PrimaryGeneratedColumn({ type: 'int' }) id!: number;
  @Column({ type: 'varchar', length: 60 }) title!: string;
  @ManyToMany(() => CpUser, (u) => u.favorites, { onDelete: 'CASCADE' }) fans?: CpUser[];
}

export const CAPTURE_ENTITIES = [CpOrder, CpRelLine, CpColLine, CpDelLine, CpSoftLine, CpPlainLine, CpUser, CpPost];

/** Counts the statements the capture subscriber runs to read keys (they carry a tag). */
export class LookupCounter implements EntitySubscriberInterface {
  readonly queries: string[] = [];
  afterQuery(event: AfterQuery): void {
    if (event.query.includes('typeorm-coalesce lookup')) this.queries.push(event.query);
  }
}

/** A pino logger whose lines land in `lines`, parsed. */
export function recordingLogger(level = 'debug'): {
  logger: Logger;
  lines: { level: number; msg: string; [k: string]: unknown }[];
} {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger, lines };
}

export interface CaptureHarness {
  db: TestDb;
  coalescer: Coalescer;
  lookups: LookupCounter;
  log: ReturnType<typeof recordingLogger>;
  /** Members pending in Redis with their heat, once this process's marks have left. */
  heat(): Promise<Record<string, number>>;
  /** The pending members, sorted. */
  members(): Promise<string[]>;
  /** Drains everything (recomputes record nothing), so the next step starts from an empty set. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A database of the capture entities and a coalescer with every line kind registered as a child
 * of CpOrder, and the many-to-many registered both ways (the `via` relation on the parent: the
 * owning side for users, the inverse side for posts).
 */
export async function captureHarness(name: string, dialect: Dialect): Promise<CaptureHarness> {
  const db = await createTestDb(name, { dialect, entities: CAPTURE_ENTITIES });
  const log = recordingLogger();
  const coalescer = new Coalescer({
    dataSource: db.dataSource,
    redis: redisUrl(),
    namespace: `cp-${suffix()}`,
    logger: log.logger,
  });
  const noop = async (): Promise<void> => undefined;
  coalescer.parent<number>(CpOrder, { recompute: noop });
  coalescer.parent<number>(CpUser, { recompute: noop });
  coalescer.parent<number>(CpPost, { recompute: noop });
  coalescer.child(CpRelLine, { parent: CpOrder, foreignKey: 'order' });
  coalescer.child(CpColLine, { parent: CpOrder, foreignKey: 'orderId' });
  coalescer.child(CpDelLine, { parent: CpOrder, foreignKey: 'orderId' });
  coalescer.child(CpSoftLine, { parent: CpOrder, foreignKey: 'order' });
  coalescer.child(CpPlainLine, { parent: CpOrder, foreignKey: 'order' });
  coalescer.child(CpPost, { parent: CpUser, via: 'favorites' });
  coalescer.child(CpUser, { parent: CpPost, via: 'fans' });
  await coalescer.attach();
  const lookups = new LookupCounter();
  db.dataSource.subscribers.push(lookups);
  const heat = async (): Promise<Record<string, number>> => {
    await coalescer.flushed();
    return Object.fromEntries((await coalescer.hottest(1000)).map((h) => [h.member, h.heat]));
  };
  return {
    db,
    coalescer,
    lookups,
    log,
    heat,
    members: async () => Object.keys(await heat()).sort(),
    reset: async () => {
      await coalescer.drain();
      lookups.queries.length = 0;
    },
    close: async () => {
      await dispose(coalescer);
      await db.destroy();
    },
  };
}

/** Sorted members of `type` for `ids`. */
export function m(type: string, ...ids: number[]): string[] {
  return ids.map((id) => `${type}:${id}`).sort();
}
