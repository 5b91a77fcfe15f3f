// The writers of the triggerLoad benchmark, in a process of their own (as another program's
// would be, so their event loop is not the relay's): `writers` connections insert lines of
// random orders through raw SQL, one autocommit statement each, for `durationMs`, then the
// process replies with the inserts it counted and exits.
import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';

/** What the parent sends. */
export interface LoadWriterJob {
  database: 'postgres' | 'mariadb';
  url: string;
  /** PostgreSQL: the schema of the lines table. */
  schema?: string;
  orders: number[];
  writers: number;
  durationMs: number;
}

/** What the writer process replies. */
export interface LoadWriterReply {
  inserts: number;
  ms: number;
}

type Insert = (order: number) => Promise<unknown>;

async function connect(job: LoadWriterJob): Promise<{ insert: Insert; close(): Promise<void> }> {
  if (job.database === 'postgres') {
    const client = new Client({ connectionString: job.url, options: `-c search_path=${job.schema ?? 'public'}` });
    await client.connect();
    return {
      insert: (order) =>
        client.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES ($1, 'w', 1, 1.00)`, [order]),
      close: () => client.end(),
    };
  }
  const conn = await createConnection(job.url);
  return {
    insert: (order) =>
      conn.query(`INSERT INTO shop_order_line (order_id, sku, qty, unit_price) VALUES (?, 'w', 1, 1.00)`, [order]),
    close: () => conn.end(),
  };
}

async function run(job: LoadWriterJob): Promise<LoadWriterReply> {
  const conns = await Promise.all(Array.from({ length: job.writers }, () => connect(job)));
  let inserts = 0;
  let stop = false;
  const t = performance.now();
  const loops = conns.map(async (c) => {
    while (!stop) {
      await c.insert(job.orders[Math.floor(Math.random() * job.orders.length)] as number);
      inserts += 1;
    }
  });
  await new Promise((resolve) => setTimeout(resolve, job.durationMs));
  stop = true;
  const counted = { inserts, ms: performance.now() - t };
  await Promise.all(loops);
  await Promise.all(conns.map((c) => c.close()));
  return counted;
}

process.once('message', (job: LoadWriterJob) => {
  run(job).then(
    (reply) => process.send?.(reply, () => process.exit(0)),
    (error: unknown) => {
      process.stderr.write(`load writer: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
});
