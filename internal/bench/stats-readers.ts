// 7: reads never starve writes, at scale. The real server (a child process) on a database with
// a long history in processed_messages; orders are posted at a fixed concurrency, alone and
// with 40 clients looping on GET /stats, in alternating rounds. Every order must be accepted
// and its p99 stay within 2× of the same run without the readers.
import { once } from 'node:events';
import http from 'node:http';
import { Worker } from 'node:worker_threads';
import type { Config } from '../config/config.ts';
import { insertHistory } from '../inventory/processed.ts';
import { listProducts } from '../inventory/stock.ts';
import { countOutbox } from '../outbox/outbox.ts';
import { post, startServerChild } from './api.ts';
import type { BenchDatabases } from './databases.ts';
import { closedLoop, percentiles, until, type Percentiles } from './load.ts';

const WARM_UP_ORDERS = 300;

export interface ReadersSide extends Percentiles {
  readers: number;
  /** Answers other than 201 Created, and how many of those were 503. */
  non201: number;
  unavailable: number;
  /** GET /stats answered per second while the orders ran (0 without readers). */
  readsPerSecond: number;
  readFailures: number;
}

export interface ReadersResult {
  historyRows: number;
  ordersPerRun: number;
  concurrency: number;
  rounds: number;
  /** Every run in the order it ran. */
  runs: ReadersSide[];
  /** All rounds of a side pooled. */
  alone: ReadersSide;
  withReaders: ReadersSide;
  /** p99 with readers ÷ p99 alone. */
  p99Ratio: number;
}

export async function measureStatsReaders(
  databases: BenchDatabases,
  config: Config,
  options: { historyRows: number; readers: number; orders: number; concurrency: number; rounds: number },
  onPhase: (message: string) => void,
): Promise<ReadersResult> {
  const db = await databases.fresh('readers');
  try {
    onPhase(`seeding ${options.historyRows} processed messages`);
    await insertHistory(db.pool, options.historyRows, 'history');
    await db.pool.query('VACUUM ANALYZE');
    const server = await startServerChild(db.url, config);
    try {
      const products = (await listProducts(db.pool)).map((p) => p.id);
      const body = (i: number) => JSON.stringify({ productId: products[i % products.length], quantity: 1, userId: 'bench' });
      const drain = async () => {
        if (!(await until(async () => (await countOutbox(db.pool)).pending === 0, 120_000, 200))) {
          throw new Error("the server's workers did not drain the outbox");
        }
      };
      const run = async (orders: number, readers: number): Promise<{ side: ReadersSide; samples: number[] }> => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
        const samples: number[] = [];
        let non201 = 0;
        let unavailable = 0;
        // The readers run on a thread of their own: in this event loop their replies would
        // delay the timing of the orders, which is not what a dashboard does to the server.
        const readerLoops = readers > 0 ? await startReaders(`${server.url}/stats`, readers) : undefined;
        try {
          await closedLoop(orders, options.concurrency, async (i) => {
            const started = performance.now();
            const status = await post(agent, server.url, body(i));
            samples.push(performance.now() - started);
            if (status !== 201) non201 += 1;
            if (status === 503) unavailable += 1;
          });
          const read = (await readerLoops?.stop()) ?? { reads: 0, failures: 0, ms: 0 };
          const side = {
            readers, ...percentiles(samples), non201, unavailable,
            readsPerSecond: read.ms > 0 ? (read.reads / read.ms) * 1000 : 0, readFailures: read.failures,
          };
          return { side, samples };
        } finally {
          await readerLoops?.stop();
          agent.destroy();
          await drain();
        }
      };

      await run(WARM_UP_ORDERS, 0);
      const runs: ReadersSide[] = [];
      const pooled = { alone: [] as number[], withReaders: [] as number[] };
      for (let round = 0; round < options.rounds; round++) {
        // Alone first, then with readers; the other way round next time.
        for (const readers of round % 2 === 0 ? [0, options.readers] : [options.readers, 0]) {
          onPhase(
            `round ${round + 1}/${options.rounds}: ${options.orders} × POST /orders, ${options.concurrency} in flight, ` +
              (readers === 0 ? 'no readers' : `${readers} clients looping on GET /stats`),
          );
          const { side, samples } = await run(options.orders, readers);
          runs.push(side);
          (readers === 0 ? pooled.alone : pooled.withReaders).push(...samples);
        }
      }
      const alone = pool(runs.filter((r) => r.readers === 0), pooled.alone);
      const withReaders = pool(runs.filter((r) => r.readers > 0), pooled.withReaders);
      return {
        historyRows: options.historyRows,
        ordersPerRun: options.orders,
        concurrency: options.concurrency,
        rounds: options.rounds,
        runs,
        alone,
        withReaders,
        p99Ratio: withReaders.p99 / alone.p99,
      };
    } finally {
      await server.stop();
    }
  } finally {
    await db.drop();
  }
}

function pool(runs: ReadersSide[], samples: number[]): ReadersSide {
  const sum = (pick: (r: ReadersSide) => number) => runs.reduce((total, r) => total + pick(r), 0);
  return {
    readers: runs[0]?.readers ?? 0,
    ...percentiles(samples),
    non201: sum((r) => r.non201),
    unavailable: sum((r) => r.unavailable),
    readsPerSecond: sum((r) => r.readsPerSecond) / Math.max(1, runs.length),
    readFailures: sum((r) => r.readFailures),
  };
}

// Plain JavaScript, evaluated in a worker thread: `readers` loops on GET `url`, back to back.
const READERS_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: workerData.readers });
let reading = true;
let reads = 0;
let failures = 0;
const started = performance.now();
const get = () => new Promise((resolve) => {
  const req = http.get(workerData.url, { agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
  req.on('error', () => resolve(0));
});
const loops = Array.from({ length: workerData.readers }, async () => {
  while (reading) { if ((await get()) === 200) reads += 1; else failures += 1; }
});
parentPort.on('message', async () => {
  reading = false;
  const ms = performance.now() - started;
  await Promise.all(loops);
  agent.destroy();
  parentPort.postMessage({ reads, failures, ms });
});
parentPort.postMessage('reading');
`;

interface ReaderLoops {
  /** Stops the loops; what they read. Safe to call twice. */
  stop(): Promise<{ reads: number; failures: number; ms: number }>;
}

async function startReaders(url: string, readers: number): Promise<ReaderLoops> {
  const thread = new Worker(READERS_THREAD, { eval: true, workerData: { url, readers } });
  await once(thread, 'message');
  let stopping: Promise<{ reads: number; failures: number; ms: number }> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        const done = once(thread, 'message');
        thread.postMessage('stop');
        const [counts] = (await done) as [{ reads: number; failures: number; ms: number }];
        await thread.terminate();
        return counts;
      })();
      return stopping;
    },
  };
}
