// The application: `node dist/examples/nestjs/main.js`, with the worker running. Writes a post
// and its comments as requests would, reads the post fresh, prints it with the health check.
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { BlogService } from './blog.service';
import { HealthService } from './health.service';

async function main(): Promise<void> {
  // An HTTP application would be NestFactory.create(AppModule) and app.listen(3000).
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  try {
    const blog = app.get(BlogService);
    const post = await blog.createPost('Coalescing writes');
    for (const body of ['First!', 'Nice post', 'Thanks']) await blog.comment(post.id, body);
    const fresh = await blog.freshPost(post.id);
    const health = await app.get(HealthService).check();
    console.log(JSON.stringify({ post: { id: fresh.id, commentCount: fresh.commentCount }, health: health.status }));
  } finally {
    await app.close();
  }
}

main().catch((error: unknown) => {
  console.error(`main: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
