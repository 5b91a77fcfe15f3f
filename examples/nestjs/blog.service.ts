import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import type { Coalescer } from '../../src';
import { InjectCoalescer } from '../../src/nestjs';
import { Comment, Post } from './blog.entities';

@Injectable()
export class BlogService {
  constructor(
    @InjectRepository(Post) private readonly posts: Repository<Post>,
    @InjectRepository(Comment) private readonly comments: Repository<Comment>,
    @InjectCoalescer() private readonly coalescer: Coalescer,
  ) {}

  createPost(title: string): Promise<Post> {
    return this.posts.save(this.posts.create({ title }));
  }

  /** Saves a comment: the capture marks its post, a runner recomputes the post's figures. */
  comment(postId: number, body: string): Promise<Comment> {
    return this.comments.save(this.comments.create({ postId, body }));
  }

  /** The post once its figures include this process's latest comments (read your own writes). */
  async freshPost(id: number): Promise<Post> {
    await this.coalescer.fresh(Post, id, { timeoutMs: 10_000 });
    return this.posts.findOneByOrFail({ id });
  }
}
