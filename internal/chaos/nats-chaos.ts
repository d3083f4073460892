// The chaos run in TRANSPORT=nats: both services as child processes over one nats-server that
// this run owns. While orders flow it SIGKILLs the order service, SIGKILLs the inventory
// service, restarts nats-server (and PostgreSQL, if asked), each at seeded points; then it
// drains and audits both databases. The broker outlives the services' kills: it is its own
// daemon, started by the run, not by a service.
import { jetstreamManager } from '@nats-io/jetstream';
import type { Pool } from '../db/pool.ts';
import { seededRandom, type Random } from '../faults/random.ts';
import { STOCK_REJECTED, STOCK_RESERVED } from '../inventory/replies.ts';
import { listProducts } from '../inventory/stock.ts';
import type { Logger } from '../log/logger.ts';
import { countOrdersByStatus } from '../orders/orders.ts';
import { countDeadLetters, listDeadLetters, redriveDeadLetters } from '../outbox/dead-letters.ts';
import { countOutbox, ORDER_CREATED } from '../outbox/outbox.ts';
import { connectNats } from '../transport/nats.ts';
import { INVENTORY_STREAM, ORDERS_STREAM } from '../transport/nats-streams.ts';
import { Load, sleep, type ChaosDatabase, type ChaosOptions, type ChaosResult, type PlannedOrder } from './chaos.ts';
import { startServerChild, type ServerChild } from './server-child.ts';
import { auditNats } from './verify.ts';

export interface NatsChaosOptions extends ChaosOptions {
  /** SIGKILLs of the inventory service (`kills` is the order service's). */
  inventoryKills: number;
  brokerRestarts: number;
}

/** The nats-server this run owns. */
export interface ChaosBroker {
  url: string;
  /** Stops nats-server (its store flushed), waits `downMs`, starts it again on the same store and port. */
  restart(downMs: number): Promise<void>;
}

export interface NatsChaosDeps {
  /** The order service's database (orders, its outbox, its reply inbox). */
  database: ChaosDatabase;
  /** The inventory service's database (stock, its inbox, its reply outbox). */
  inventoryDatabase: { url: string; pool: Pool };
  broker: ChaosBroker;
  port: number;
  inventoryPort: number;
  /** Where the children keep nothing of value (no embedded PostgreSQL, no nats-server of their own). */
  dataDir: string;
  logger: Logger;
  signal?: AbortSignal;
}

type Disruption = 'kill' | 'inventory-kill' | 'broker' | 'db';

/** A cold start of a service (tsx, migrations, broker topology) on a busy machine took over a minute. */
const START_TIMEOUT_MS = 180_000;

export async function runNatsChaos(options: NatsChaosOptions, deps: NatsChaosDeps): Promise<ChaosResult> {
  const log = deps.logger.child('Chaos');
  const random = seededRandom(options.seed);
  const started = Date.now();
  const droppedBy = { orderService: 0, inventory: 0 };
  // The relays log "delivered and deleted 3 events (2 published, 1 duplicate)": a duplicate is
  // a republish the broker recognised by its Nats-Msg-Id and did not store again.
  const countDropped = (side: keyof typeof droppedBy) => (line: string) => {
    const summary = /delivered .*?\(([^)]*)\)/.exec(line)?.[1];
    const n = summary && /(\d+) duplicate/.exec(summary)?.[1];
    if (n) droppedBy[side] += Number(n);
  };
  const env = (failRate: number): Record<string, string> => ({
    TRANSPORT: 'nats',
    NATS_URL: deps.broker.url,
    DATA_DIR: deps.dataDir,
    DATABASE_URL: deps.database.url,
    INVENTORY_DATABASE_URL: deps.inventoryDatabase.url,
    LEASE_MS: String(options.leaseMs),
    POLL_INTERVAL_MS: '100',
    RETRY_BASE_MS: '200',
    RETRY_MAX_MS: '2000',
    // A killed inventory's unacknowledged messages come again after the ack wait: keep it short
    // (it must exceed the statement timeout, see config.ts).
    NATS_ACK_WAIT: '8s',
    DB_STATEMENT_TIMEOUT_MS: '5000',
    FAIL_RATE: String(failRate),
    FAULT_SEED: String(options.seed),
    LOG_LEVEL: 'info',
  });
  const startOrders = (failRate: number) =>
    startServerChild(deps.port, env(failRate), deps.logger, START_TIMEOUT_MS, { name: 'Orders', onLine: countDropped('orderService') });
  const startInventory = (failRate: number) =>
    startServerChild(deps.inventoryPort, env(failRate), deps.logger, START_TIMEOUT_MS, {
      script: 'cmd/inventory/main.ts', healthPath: '/health/ready', name: 'Inventory', portVariable: 'INVENTORY_PORT', onLine: countDropped('inventory'),
    });

  let inventory: ServerChild = await startInventory(options.failRate);
  let orders: ServerChild = await startOrders(options.failRate).catch(async (error: unknown) => {
    await inventory.stop();
    throw error;
  });
  const stopBoth = async () => {
    await orders.stop();
    await inventory.stop();
  };
  log.info(`order service up at ${orders.url}, inventory service at ${inventory.url}, nats-server ${deps.broker.url}; seed ${options.seed}`);

  try {
    const products = (await listProducts(deps.database.pool)).map((p) => p.id);
    const plan: PlannedOrder[] = Array.from({ length: options.orders }, (_, i) => ({
      key: `chaos-${options.seed}-${i}`,
      productId: products[i % products.length]!,
      quantity: 1 + Math.floor(random() * 3),
    }));
    // Two services restart here, each a cold tsx start: on a busy machine that is most of a
    // minute, so a client waits longer before it gives an order up.
    const load = new Load(orders.url, plan, options.concurrency, random, deps.signal, 300_000);
    const loading = load.run();
    const done: Record<Disruption, number> = { kill: 0, 'inventory-kill': 0, broker: 0, db: 0 };
    const disruptions = schedule(options, random);
    for (const [index, disruption] of disruptions.entries()) {
      // As in-process: hold new orders so the disruption lands while the load still runs, and
      // let them go as it lands.
      load.holdAt = disruption.at;
      while (load.progress() < disruption.at && !load.finished && !deps.signal?.aborted) await sleep(10);
      if (load.finished || deps.signal?.aborted) break;
      load.holdAt = disruptions[index + 1]?.at ?? Infinity;
      const at = `at ${load.accepted.length}/${plan.length} accepted`;
      if (disruption.kind === 'kill') {
        log.info(`kill #${++done.kill} ${at}: SIGKILL the order service`);
        await orders.kill();
        await sleep(100 + random() * 400);
        orders = await startOrders(options.failRate);
        log.info('order service restarted');
      } else if (disruption.kind === 'inventory-kill') {
        log.info(`inventory kill #${++done['inventory-kill']} ${at}: SIGKILL the inventory service`);
        await inventory.kill();
        await sleep(100 + random() * 400);
        inventory = await startInventory(options.failRate);
        log.info('inventory service restarted');
      } else if (disruption.kind === 'broker') {
        log.info(`nats-server restart #${++done.broker} ${at}`);
        await deps.broker.restart(300 + random() * 500);
        log.info('nats-server is back');
      } else if (deps.database.restart) {
        log.info(`PostgreSQL restart #${++done.db} ${at}`);
        await deps.database.restart(300 + random() * 500);
        log.info('PostgreSQL is back');
      }
    }
    load.holdAt = Infinity;
    await loading;
    log.info(`load done: ${load.accepted.length} accepted, ${load.retries} client retries`);

    const deadLettered = (await countDeadLetters(deps.database.pool)) + (await countDeadLetters(deps.inventoryDatabase.pool));
    if (options.failRate > 0) {
      await stopBoth();
      inventory = await startInventory(0);
      orders = await startOrders(0);
    }
    // Only what a service publishes itself can go back to its outbox; a received message it
    // dead-lettered stays there (and fails the audit).
    const redriven =
      (await redriveOwn(deps.database.pool, [ORDER_CREATED])) + (await redriveOwn(deps.inventoryDatabase.pool, [STOCK_RESERVED, STOCK_REJECTED]));
    if (redriven > 0) log.info(`re-drove ${redriven} dead letter(s) now that deliveries no longer fail`);
    await settle(deps, options.settleTimeoutMs, log);
    await stopBoth();

    const result = await auditNats(deps.database.pool, deps.inventoryDatabase.pool, load.accepted);
    const streamMessages = await countStreamMessages(deps.broker.url, deps.logger);
    return {
      seed: options.seed,
      options,
      killsDone: done.kill,
      dbRestartsDone: done.db,
      clientRetries: load.retries,
      refused: load.refused,
      serverErrors: load.serverErrors,
      deadLettered,
      redriven,
      durationMs: Date.now() - started,
      audit: result,
      nats: {
        inventoryKills: options.inventoryKills,
        inventoryKillsDone: done['inventory-kill'],
        brokerRestarts: options.brokerRestarts,
        brokerRestartsDone: done.broker,
        audit: result,
        brokerDroppedDuplicates: droppedBy,
        streamMessages,
      },
      ok: result.ok && result.rejected === 0 && load.refused === 0 && load.serverErrors === 0 && load.accepted.length === plan.length,
    };
  } finally {
    // Idempotent: after a clean run both have exited already.
    await stopBoth();
  }
}

/** Every disruption at a seeded point of the load (a share of orders sent). */
function schedule(options: NatsChaosOptions, random: Random): Array<{ at: number; kind: Disruption }> {
  const at = () => 0.1 + random() * 0.8;
  const times = (n: number, kind: Disruption) => Array.from({ length: n }, () => ({ at: at(), kind }));
  return [
    ...times(options.kills, 'kill'),
    ...times(options.inventoryKills, 'inventory-kill'),
    ...times(options.brokerRestarts, 'broker'),
    ...times(options.dbRestarts, 'db'),
  ].sort((a, b) => a.at - b.at);
}

async function redriveOwn(pool: Pool, eventTypes: string[]): Promise<number> {
  const own = (await listDeadLetters(pool, 100_000)).filter((d) => eventTypes.includes(d.eventType)).map((d) => d.messageId);
  return own.length === 0 ? 0 : (await redriveDeadLetters(pool, own)).length;
}

/** Until both outboxes are empty and no order is PENDING, or the timeout. */
async function settle(deps: NatsChaosDeps, timeoutMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [outbox, replies, orders] = await Promise.all([
      countOutbox(deps.database.pool), countOutbox(deps.inventoryDatabase.pool), countOrdersByStatus(deps.database.pool),
    ]);
    if (outbox.pending === 0 && replies.pending === 0 && orders.PENDING === 0) return;
    if (Date.now() > deadline) {
      log.warn(
        `not settled after ${timeoutMs} ms: ${outbox.pending} event(s) in the order outbox, ${replies.pending} in the inventory's, ${orders.PENDING} order(s) PENDING`,
      );
      return;
    }
    await sleep(100);
  }
}

async function countStreamMessages(url: string, logger: Logger): Promise<{ orders: number; inventory: number }> {
  const nc = await connectNats(url, 'chaos-audit', logger);
  try {
    const jsm = await jetstreamManager(nc);
    const [orders, inventory] = await Promise.all([jsm.streams.info(ORDERS_STREAM.name), jsm.streams.info(INVENTORY_STREAM.name)]);
    // Fresh streams per run: the last sequence is every message they ever stored.
    return { orders: orders.state.last_seq, inventory: inventory.state.last_seq };
  } finally {
    await nc.close();
  }
}
