import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/**
 * A bench script forked as a process of its own (a drain worker, a runner), driven over IPC:
 * each request is answered by one reply, in order. Its first reply says it is ready.
 */
export class Forked<Request extends object, Reply> {
  private readonly waiting: { resolve: (reply: Reply) => void; reject: (error: Error) => void }[] = [];
  private failure: Error | undefined;

  private constructor(
    private readonly child: ChildProcess,
    name: string,
  ) {
    child.on('message', (reply: Reply) => this.waiting.shift()?.resolve(reply));
    child.once('exit', (code) => {
      this.failure = new Error(`bench ${name} exited with ${code}`);
      for (const w of this.waiting.splice(0)) w.reject(this.failure);
    });
  }

  /** Forks `script` (a file of dist/bench) with `env` added; resolves once it replied ready. */
  static async start<Request extends object, Reply>(
    script: string,
    name: string,
    env: Record<string, string>,
  ): Promise<Forked<Request, Reply>> {
    const child = fork(join(__dirname, script), [], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const forked = new Forked<Request, Reply>(child, name);
    await forked.request();
    return forked;
  }

  /** Sends `request` (none: waits for the next reply) and resolves with the reply; rejects if the process exits first. */
  request(request?: Request): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const reply = new Promise<Reply>((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (request) this.child.send(request);
    return reply;
  }

  /** Sends `exit` and waits for the process to end; kills it if it has not within `killAfterMs`. */
  async stop(exit: Request, killAfterMs: number): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.send(exit);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    await exited;
    clearTimeout(timer);
  }
}
