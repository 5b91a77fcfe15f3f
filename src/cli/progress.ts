/** A one-line progress bar on a terminal; silent when stderr is not a TTY (logs, CI, pipes). */
export class Progress {
  private readonly tty: boolean;
  private last = 0;

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY) && !process.env.CI;
  }

  /** Redraws at most ten times a second. */
  update(done: number, total: number, detail = ''): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 30;
    const share = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(share * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    this.stream.write(`\r${this.label} [${bar}] ${Math.round(share * 100)}% ${done}/${total} ${detail}`.padEnd(100));
  }

  done(): void {
    if (this.tty) this.stream.write('\n');
  }
}
