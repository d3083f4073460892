// 8: what tracing costs. The whole server in this process (API, relay, in-process consumer),
// POST /orders over HTTP from many callers, timed twice: the writes (every POST answered) and
// end to end (every order settled). Three ways: tracing off (the API's no-op tracer: no ids, no
// header), on with no exporter (what runs when OTEL_EXPORTER_OTLP_ENDPOINT is unset: real ids
// carried and logged, spans dropped as they end), and on with an in-memory exporter (every span
// kept: an upper bound for an exporter's in-process share). Alternating rounds on fresh
// databases, who goes first rotating; best of each.
import http from 'node:http';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { startServer } from '../app/wiring.ts';
import type { Config } from '../config/config.ts';
import { listProducts } from '../inventory/stock.ts';
import { createSilentLogger } from '../log/logger.ts';
import { countOutbox } from '../outbox/outbox.ts';
import { createTracing, noTracing, type Tracing } from '../tracing/tracing.ts';
import type { BenchDatabases } from './databases.ts';
import { closedLoop, perSecond, until } from './load.ts';

export const TRACING_MODES = ['off', 'no-exporter', 'in-memory'] as const;
export type TracingMode = (typeof TRACING_MODES)[number];

export interface TracingRun {
  writesPerSecond: number;
  endToEndPerSecond: number;
  /** Spans the in-memory exporter received (0 otherwise). */
  spans: number;
}

export interface TracingResult {
  orders: number;
  concurrency: number;
  rounds: number;
  runs: Record<TracingMode, TracingRun[]>;
  /** Best of each mode. */
  best: Record<TracingMode, { writesPerSecond: number; endToEndPerSecond: number }>;
  /** no-exporter ÷ off, for the writes and end to end: the acceptance's "within noise". */
  ratio: { writes: number; endToEnd: number };
  /** How far apart the rounds of "off" alone are (worst ÷ best, writes): the noise to compare with. */
  offSpread: number;
}

export async function measureTracing(
  databases: BenchDatabases,
  config: Config,
  options: { orders: number; concurrency: number; rounds: number },
  onPhase: (message: string) => void,
): Promise<TracingResult> {
  const runs: Record<TracingMode, TracingRun[]> = { off: [], 'no-exporter': [], 'in-memory': [] };
  for (let round = 0; round < options.rounds; round++) {
    const order = TRACING_MODES.map((_, i) => TRACING_MODES[(i + round) % TRACING_MODES.length]!);
    for (const mode of order) {
      onPhase(`tracing ${mode}, round ${round + 1}/${options.rounds}: ${options.orders} × POST /orders, ${options.concurrency} in flight`);
      runs[mode].push(await run(databases, config, mode, options));
    }
  }
  const best = (mode: TracingMode) => ({
    writesPerSecond: Math.max(...runs[mode].map((r) => r.writesPerSecond)),
    endToEndPerSecond: Math.max(...runs[mode].map((r) => r.endToEndPerSecond)),
  });
  const result = { off: best('off'), 'no-exporter': best('no-exporter'), 'in-memory': best('in-memory') };
  const offWrites = runs.off.map((r) => r.writesPerSecond);
  return {
    ...options,
    runs,
    best: result,
    ratio: {
      writes: result['no-exporter'].writesPerSecond / result.off.writesPerSecond,
      endToEnd: result['no-exporter'].endToEndPerSecond / result.off.endToEndPerSecond,
    },
    offSpread: Math.min(...offWrites) / Math.max(...offWrites),
  };
}

async function run(
  databases: BenchDatabases,
  config: Config,
  mode: TracingMode,
  options: { orders: number; concurrency: number },
): Promise<TracingRun> {
  const db = await databases.fresh(`tracing_${mode.replace('-', '_')}`);
  const exporter = mode === 'in-memory' ? new InMemorySpanExporter() : undefined;
  const tracing: Tracing =
    mode === 'off' ? noTracing() : createTracing({ otlpEndpoint: undefined, serviceName: 'bench' }, { defaultServiceName: 'bench', exporter });
  const server = await startServer({ ...config, databaseUrl: db.url, port: 0, logLevel: 'silent' }, createSilentLogger(), { tracing });
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  try {
    const products = (await listProducts(db.pool)).map((p) => p.id);
    const body = (i: number) => JSON.stringify({ productId: products[i % products.length], quantity: 1, userId: 'bench' });
    const settled = async () => {
      if (!(await until(async () => (await countOutbox(db.pool)).pending === 0, 120_000, 20))) throw new Error('the workers did not drain the outbox');
    };
    // Warm-up: JIT, pools, the first spans.
    await closedLoop(200, options.concurrency, (i) => post(agent, server.url, body(i)));
    await settled();
    exporter?.reset();
    const started = performance.now();
    let failed = 0;
    const writeMs = await closedLoop(options.orders, options.concurrency, async (i) => {
      if ((await post(agent, server.url, body(i))) !== 201) failed += 1;
    });
    await settled();
    const endToEndMs = performance.now() - started;
    if (failed > 0) throw new Error(`${failed} orders were not accepted`);
    return { writesPerSecond: perSecond(options.orders, writeMs), endToEndPerSecond: perSecond(options.orders, endToEndMs), spans: exporter?.getFinishedSpans().length ?? 0 };
  } finally {
    agent.destroy();
    await server.close();
    await tracing.shutdown();
    await db.drop();
  }
}

function post(agent: http.Agent, url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/orders`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}
