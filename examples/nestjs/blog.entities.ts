import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { Aggregate, count, max } from '../../src';

/** A parent: its comment count and latest comment date are derived from its comments. */
@Entity({ name: 'blog_post' })
export class Post {
  @PrimaryGeneratedColumn({ type: 'int' })
  id!: number;

  @Column({ type: 'varchar', length: 200 })
  title!: string;

  /** Number of comments; kept by the coalescer. */
  @Column({ name: 'comment_count', type: 'int', default: 0 })
  @Aggregate(count(() => Comment, { foreignKey: 'postId' }))
  commentCount!: number;

  /** When the latest comment was written; kept by the coalescer. */
  @Column({ name: 'last_comment_at', type: 'timestamptz', nullable: true })
  @Aggregate(max(() => Comment, 'createdAt', { foreignKey: 'postId' }))
  lastCommentAt!: Date | null;
}

/** A child: each saved comment makes its post stale. */
@Entity({ name: 'blog_comment' })
export class Comment {
  @PrimaryGeneratedColumn({ type: 'int' })
  id!: number;

  @Index()
  @Column({ name: 'post_id', type: 'int' })
  postId!: number;

  @Column({ type: 'text' })
  body!: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
