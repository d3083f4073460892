// 4 and 5: the Order API over HTTP (the real server, as a child process) against the same
// order transaction issued directly from as many callers, in the same run; and the server's
// memory after each of several runs.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/config.ts';
import { closePool, createPool } from '../db/pool.ts';
import { listProducts } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { countOutbox } from '../outbox/outbox.ts';
import { createWakeup } from '../outbox/wakeup.ts';
import { freePort } from '../testkit/ports.ts';
import type { BenchDatabases } from './databases.ts';
import { closedLoop, perSecond, until } from './load.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// The server's API pool (connectDatabase's default), so the direct run has the same connections.
const API_POOL_SIZE = 10;
const WARM_UP_ORDERS = 1_000;

export interface ApiRun {
  orders: number;
  ordersPerSecond: number;
  failed: number;
  /** Server RSS after this run (and its drain), MB; undefined where /proc is missing. */
  rssMb: number | undefined;
}

export interface ApiResult {
  concurrency: number;
  directPerSecond: number;
  runs: ApiRun[];
  /** Median of the runs. */
  apiPerSecond: number;
  /** Every order the server's workers consumed: warm-up, direct and HTTP runs. */
  ordersServed: number;
  ratio: number;
}

export async function measureApi(
  databases: BenchDatabases,
  config: Config,
  options: { orders: number; concurrency: number; runs: number },
  onPhase: (message: string) => void,
): Promise<ApiResult> {
  const db = await databases.fresh('api');
  const server = await startServerChild(db.url, config);
  try {
    const products = (await listProducts(db.pool)).map((p) => p.id);
    const body = (i: number) => JSON.stringify({ productId: products[i % products.length], quantity: 1, userId: 'bench' });
    // A fresh keep-alive agent per run: between runs the server closes idle sockets (its
    // keep-alive timeout is shorter than a drain), and reusing one it just closed fails a request.
    const httpRun = async (orders: number, onStatus: (status: number) => void) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
      try {
        return await closedLoop(orders, options.concurrency, async (i) => onStatus(await post(agent, server.url, body(i))));
      } finally {
        agent.destroy();
      }
    };
    const drain = async () => {
      if (!(await until(async () => (await countOutbox(db.pool)).pending === 0, 120_000, 200))) {
        throw new Error("the server's workers did not drain the outbox");
      }
    };

    await httpRun(WARM_UP_ORDERS, () => {});
    await drain();

    onPhase(`direct: ${options.orders} order transactions from ${options.concurrency} callers on ${API_POOL_SIZE} connections`);
    const direct = createPool({ url: db.url, applicationName: 'outbox-bench:direct', max: API_POOL_SIZE, connectionTimeoutMs: 30_000 }, createSilentLogger());
    // The same wake-up as the server's (WAKEUP=notify): the server's workers hear its NOTIFY.
    const wakeup = createWakeup({ mode: 'notify', url: db.url, logger: createSilentLogger() });
    let directMs: number;
    try {
      directMs = await closedLoop(options.orders, options.concurrency, (i) =>
        placeOrder(direct, { productId: products[i % products.length]!, quantity: 1, userId: 'bench' }, { wakeup }),
      );
    } finally {
      await wakeup.close();
      await closePool(direct);
    }
    await drain();

    const runs: ApiRun[] = [];
    for (let run = 1; run <= options.runs; run++) {
      onPhase(`HTTP run ${run}/${options.runs}: ${options.orders} × POST /orders, ${options.concurrency} in flight`);
      let failed = 0;
      const ms = await httpRun(options.orders, (status) => {
        if (status !== 201) failed += 1;
      });
      await drain();
      runs.push({ orders: options.orders, ordersPerSecond: perSecond(options.orders - failed, ms), failed, rssMb: await rssMb(server.child.pid) });
    }
    const sorted = runs.map((r) => r.ordersPerSecond).sort((a, b) => a - b);
    const apiPerSecond = sorted[Math.floor(sorted.length / 2)]!;
    const directPerSecond = perSecond(options.orders, directMs);
    const ordersServed = WARM_UP_ORDERS + options.orders * (options.runs + 1);
    return { concurrency: options.concurrency, directPerSecond, runs, apiPerSecond, ordersServed, ratio: apiPerSecond / directPerSecond };
  } finally {
    await server.stop();
    await db.drop();
  }
}

export interface ServerChild {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * `npm start` on the given database, quiet (LOG_LEVEL=warn: no line per order), with the default
 * settings. Whatever it prints goes to our stderr: our stdout is the result (`--json`).
 */
export async function startServerChild(databaseUrl: string, config: Config): Promise<ServerChild> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'cmd/server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      NO_COLOR: '1',
      WORKERS: String(config.workers),
      BATCH_SIZE: String(config.batchSize),
      WAKEUP: 'notify',
      CONSUMER_MODE: 'per-message',
    },
    // Its stdout too goes to our stderr (fd 2): a log line in our stdout would break --json.
    stdio: ['ignore', 2, 2],
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const healthy = await until(async () => fetch(`${url}/health`).then((r) => r.ok, () => false), 60_000, 50);
  if (!healthy) {
    await stop();
    throw new Error('the server did not become healthy');
  }
  return { url, child, stop };
}

export function post(agent: http.Agent, baseUrl: string, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      `${baseUrl}/orders`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

async function rssMb(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) / 1024;
}
