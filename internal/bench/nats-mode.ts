// TRANSPORT=nats beside in-process, in one run: the same end-to-end drain (N orders already in
// the outbox → every one settled) and the same latency (open loop at a fixed rate, order
// commit → order settled). In-process, the relay's consumer settles the order in the same
// database; over NATS, the order is settled when the inventory service's reply has come back
// through its own outbox and relay: two outboxes, two inboxes, four broker hops' worth of work.
// Both latencies are read off the database clock (orders.created_at → orders.updated_at), so
// how often this process polls does not enter them. A local nats-server, started here on a free
// port with a temporary store, is stopped and removed at the end.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startInventoryService, type RunningInventoryService } from '../app/inventory-service.ts';
import { startServer, type RunningServer } from '../app/wiring.ts';
import type { Config, TransportMode } from '../config/config.ts';
import { listProducts } from '../inventory/stock.ts';
import { createSilentLogger, type Logger } from '../log/logger.ts';
import { openNatsServer } from '../nats/server.ts';
import type { Pool } from '../db/pool.ts';
import { freePort } from '../testkit/ports.ts';
import type { BenchDatabases, FreshDatabase } from './databases.ts';
import { openLoop, percentiles, perSecond, sleep, until, type Percentiles } from './load.ts';
import { seedOrders } from './relay-throughput.ts';

export interface TransportSide {
  mode: TransportMode;
  /** Best drain of the rounds: orders settled per second, end to end. */
  drainPerSecond: number;
  /** Order commit → order settled, every round's orders together. */
  latency: Percentiles & { missing: number };
}

export interface NatsModeResult {
  events: number;
  rate: number;
  durationMs: number;
  rounds: number;
  workers: number;
  sides: TransportSide[];
  /** nats / in-process drain rate. */
  drainRatio: number;
}

interface Services {
  orders: RunningServer;
  inventory?: RunningInventoryService;
  close(): Promise<void>;
}

const MODES: TransportMode[] = ['in-process', 'nats'];

export async function measureNatsMode(
  databases: BenchDatabases,
  config: Config,
  options: { events: number; rate: number; durationMs: number; rounds: number },
  logger: Logger,
): Promise<NatsModeResult> {
  const storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-bench-nats-'));
  const server = await openNatsServer({ port: await freePort(), dataDir: storeDir }, logger.child('NATS'));
  try {
    const best: Record<string, number> = {};
    const samples: Record<string, number[]> = {};
    const missing: Record<string, number> = {};
    // Alternating rounds, as in relay-throughput.ts: both sides meet the same neighbours' noise.
    for (let round = 0; round < options.rounds; round++) {
      for (const mode of MODES) {
        best[mode] = Math.max(best[mode] ?? 0, await drainRun(databases, config, mode, server.url, options.events));
        const run = await latencyRun(databases, config, mode, server.url, options.rate, options.durationMs);
        (samples[mode] ??= []).push(...run.samples);
        missing[mode] = (missing[mode] ?? 0) + run.missing;
      }
    }
    const sides = MODES.map((mode) => ({ mode, drainPerSecond: best[mode]!, latency: { ...percentiles(samples[mode]!), missing: missing[mode]! } }));
    return {
      events: options.events,
      rate: options.rate,
      durationMs: options.durationMs,
      rounds: options.rounds,
      workers: config.workers,
      sides,
      drainRatio: sides[1]!.drainPerSecond / sides[0]!.drainPerSecond,
    };
  } finally {
    await server.close();
    await fs.rm(storeDir, { recursive: true, force: true });
  }
}

/** `events` PENDING orders with their outbox rows, then the timed start of the order service until all are settled. */
async function drainRun(databases: BenchDatabases, config: Config, mode: TransportMode, natsUrl: string, events: number): Promise<number> {
  return withDatabases(databases, mode, 'drain', async (orderDb, inventoryDb) => {
    // The inventory service is up and idle first: what is timed is the order service's drain.
    const inventory = mode === 'nats' ? await startInventoryService(settingsFor(config, mode, natsUrl, orderDb, inventoryDb), createSilentLogger()) : undefined;
    try {
      await seedOrders(orderDb.pool, events);
      await orderDb.pool.query('ANALYZE');
      const started = performance.now();
      const orders = await startServer(settingsFor(config, mode, natsUrl, orderDb, inventoryDb), createSilentLogger());
      try {
        const settled = await until(async () => (await pendingOrders(orderDb.pool)) === 0, 600_000, 20);
        const elapsed = performance.now() - started;
        if (!settled) throw new Error(`${mode}: the orders did not all settle`);
        return perSecond(events, elapsed);
      } finally {
        await orders.close();
      }
    } finally {
      await inventory?.close();
    }
  });
}

/** Orders over HTTP at `rate` per second for `durationMs`; each one's commit → settled on the database clock. */
async function latencyRun(
  databases: BenchDatabases, config: Config, mode: TransportMode, natsUrl: string, rate: number, durationMs: number,
): Promise<{ samples: number[]; missing: number }> {
  return withDatabases(databases, mode, 'latency', async (orderDb, inventoryDb) => {
    const products = (await listProducts(orderDb.pool)).map((p) => p.id);
    const services = await startServices(settingsFor(config, mode, natsUrl, orderDb, inventoryDb), mode);
    try {
      // Let every worker and consumer make its first (empty) claim or pull, as in a quiet system.
      await sleep(500);
      await openLoop(rate, durationMs, async (i) => {
        const res = await fetch(`${services.orders.url}/orders`, {
          method: 'POST', headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ productId: products[i % products.length], quantity: 1, userId: 'bench' }),
        });
        await res.arrayBuffer();
      });
      await until(async () => (await pendingOrders(orderDb.pool)) === 0, 30_000, 20);
    } finally {
      await services.close();
    }
    const { rows } = await orderDb.pool.query<{ ms: number | null }>(
      `SELECT CASE WHEN status = 'PENDING' THEN NULL ELSE extract(epoch FROM updated_at - created_at) * 1000 END::float8 AS ms FROM orders`,
    );
    const samples = rows.flatMap((r) => (r.ms === null ? [] : [Math.max(0, r.ms)]));
    return { samples, missing: rows.length - samples.length };
  });
}

async function startServices(config: Config, mode: TransportMode): Promise<Services> {
  const inventory = mode === 'nats' ? await startInventoryService(config, createSilentLogger()) : undefined;
  try {
    const orders = await startServer(config, createSilentLogger());
    return {
      orders,
      inventory,
      async close() {
        await orders.close();
        await inventory?.close();
      },
    };
  } catch (error) {
    await inventory?.close();
    throw error;
  }
}

/** The order database, and in NATS mode the inventory's own one; both dropped afterwards. */
async function withDatabases<T>(
  databases: BenchDatabases, mode: TransportMode, label: string, work: (orderDb: FreshDatabase, inventoryDb: FreshDatabase | undefined) => Promise<T>,
): Promise<T> {
  const orderDb = await databases.fresh(`${label}_${mode}`);
  try {
    const inventoryDb = mode === 'nats' ? await databases.fresh(`${label}_${mode}_inventory`) : undefined;
    try {
      return await work(orderDb, inventoryDb);
    } finally {
      await inventoryDb?.drop();
    }
  } finally {
    await orderDb.drop();
  }
}

function settingsFor(config: Config, mode: TransportMode, natsUrl: string, orderDb: FreshDatabase, inventoryDb: FreshDatabase | undefined): Config {
  return {
    ...config,
    transport: mode,
    // Over NATS each message is acknowledged on its own: the per-message consumer on both sides.
    consumerMode: 'per-message',
    databaseUrl: orderDb.url,
    port: 0,
    broker: { ...config.broker, natsUrl, inventoryDatabaseUrl: inventoryDb?.url, inventoryPort: 0 },
  };
}

async function pendingOrders(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM orders WHERE status = 'PENDING'`);
  return rows[0]!.n;
}
