// The chaos run: a stress load through the real server while it is SIGKILLed and restarted,
// PostgreSQL is restarted and deliveries fail on purpose; then drain and audit. Every random
// choice comes from one seed, so a failing run can be repeated.
import type { Pool } from '../db/pool.ts';
import { seededRandom, type Random } from '../faults/random.ts';
import { listProducts } from '../inventory/stock.ts';
import type { Logger } from '../log/logger.ts';
import { countOrdersByStatus } from '../orders/orders.ts';
import { countDeadLetters, redriveDeadLetters } from '../outbox/dead-letters.ts';
import { countOutbox } from '../outbox/outbox.ts';
import { startServerChild, type ServerChild } from './server-child.ts';
import { audit, type Audit, type NatsAudit } from './verify.ts';

export interface ChaosOptions {
  orders: number;
  concurrency: number;
  kills: number;
  dbRestarts: number;
  failRate: number;
  seed: number;
  leaseMs: number;
  settleTimeoutMs: number;
}

/** The PostgreSQL under test; restart is undefined when it is not ours to restart. */
export interface ChaosDatabase {
  url: string;
  pool: Pool;
  restart?: (downMs: number) => Promise<void>;
}

export interface ChaosDeps {
  database: ChaosDatabase;
  port: number;
  logger: Logger;
  signal?: AbortSignal;
}

export interface ChaosResult {
  seed: number;
  options: ChaosOptions;
  killsDone: number;
  dbRestartsDone: number;
  /** Requests sent again (same Idempotency-Key) after no answer or a 503. */
  clientRetries: number;
  /** Orders the API refused with a 4xx (never expected here). */
  refused: number;
  /** Answers of 500 (a bug: the run fails). */
  serverErrors: number;
  deadLettered: number;
  redriven: number;
  durationMs: number;
  audit: Audit;
  /** TRANSPORT=nats runs only: the inventory service's kills, the broker's restarts, both inboxes. */
  nats?: NatsChaosOutcome;
  ok: boolean;
}

export interface NatsChaosOutcome {
  inventoryKills: number;
  inventoryKillsDone: number;
  brokerRestarts: number;
  brokerRestartsDone: number;
  audit: NatsAudit;
  /** Republishes the broker recognised by Nats-Msg-Id and did not store again, per relay (counted from their logs). */
  brokerDroppedDuplicates: { orderService: number; inventory: number };
  /** Messages in each stream at the end: one per order when the broker stored nothing twice. */
  streamMessages: { orders: number; inventory: number };
}

export interface PlannedOrder {
  key: string;
  productId: string;
  quantity: number;
}

export async function runChaos(options: ChaosOptions, deps: ChaosDeps): Promise<ChaosResult> {
  const log = deps.logger.child('Chaos');
  const random = seededRandom(options.seed);
  const started = Date.now();
  const serverEnv = (failRate: number): Record<string, string> => ({
    DATABASE_URL: deps.database.url,
    LEASE_MS: String(options.leaseMs),
    POLL_INTERVAL_MS: '100',
    RETRY_BASE_MS: '200',
    RETRY_MAX_MS: '2000',
    FAIL_RATE: String(failRate),
    FAULT_SEED: String(options.seed),
    LOG_LEVEL: 'info',
  });

  let server: ServerChild = await startServerChild(deps.port, serverEnv(options.failRate), deps.logger);
  log.info(`server up at ${server.url}; seed ${options.seed}`);
  const products = (await listProducts(deps.database.pool)).map((p) => p.id);
  const plan: PlannedOrder[] = Array.from({ length: options.orders }, (_, i) => ({
    key: `chaos-${options.seed}-${i}`,
    productId: products[i % products.length]!,
    quantity: 1 + Math.floor(random() * 3),
  }));

  const load = new Load(server.url, plan, options.concurrency, random, deps.signal);
  const loading = load.run();
  let killsDone = 0;
  let dbRestartsDone = 0;
  const disruptions = schedule(options, random);
  for (const [index, disruption] of disruptions.entries()) {
    // Hold new orders at this point so the disruption lands while the load is still running…
    load.holdAt = disruption.at;
    while (load.progress() < disruption.at && !load.finished && !deps.signal?.aborted) await sleep(10);
    if (load.finished || deps.signal?.aborted) break;
    // …and let them go just as it lands: they meet a dying or dead server (or a database that
    // is down) and must retry with their Idempotency-Key, which is the point of the run.
    load.holdAt = disruptions[index + 1]?.at ?? Infinity;
    if (disruption.kind === 'kill') {
      killsDone += 1;
      log.info(`kill #${killsDone} at ${load.accepted.length}/${plan.length} accepted: SIGKILL the server`);
      await server.kill();
      await sleep(100 + random() * 400);
      server = await startServerChild(deps.port, serverEnv(options.failRate), deps.logger);
      log.info(`server restarted`);
    } else if (deps.database.restart) {
      dbRestartsDone += 1;
      log.info(`PostgreSQL restart #${dbRestartsDone} at ${load.accepted.length}/${plan.length} accepted`);
      await deps.database.restart(300 + random() * 500);
      log.info(`PostgreSQL is back`);
    }
  }
  load.holdAt = Infinity;
  await loading;
  log.info(`load done: ${load.accepted.length} accepted, ${load.retries} client retries`);

  // Clean up after the injected failures: a server without them, dead letters re-driven.
  const deadLettered = await countDeadLetters(deps.database.pool);
  if (options.failRate > 0) {
    await server.stop();
    server = await startServerChild(deps.port, serverEnv(0), deps.logger);
  }
  const redriven = (await redriveDeadLetters(deps.database.pool)).length;
  if (redriven > 0) log.info(`re-drove ${redriven} dead letter(s) now that deliveries no longer fail`);
  await settle(deps.database.pool, options.settleTimeoutMs, log);
  await server.stop();

  const result = await audit(deps.database.pool, load.accepted);
  return {
    seed: options.seed,
    options,
    killsDone,
    dbRestartsDone,
    clientRetries: load.retries,
    refused: load.refused,
    serverErrors: load.serverErrors,
    deadLettered,
    redriven,
    durationMs: Date.now() - started,
    audit: result,
    // Stock is plentiful, so any REJECTED order means the consumer misjudged.
    ok: result.ok && result.rejected === 0 && load.refused === 0 && load.serverErrors === 0 && load.accepted.length === plan.length,
  };
}

/** Kills and database restarts at seeded points of the load (as a share of orders done). */
function schedule(options: ChaosOptions, random: Random): Array<{ at: number; kind: 'kill' | 'db' }> {
  const at = () => 0.1 + random() * 0.8;
  return [
    ...Array.from({ length: options.kills }, () => ({ at: at(), kind: 'kill' as const })),
    ...Array.from({ length: options.dbRestarts }, () => ({ at: at(), kind: 'db' as const })),
  ].sort((a, b) => a.at - b.at);
}

/** Clients that keep retrying with the same Idempotency-Key until they get an answer. */
export class Load {
  readonly accepted: string[] = [];
  retries = 0;
  refused = 0;
  serverErrors = 0;
  finished = false;
  /** Share of the plan past which no new order is sent (the chaos driver moves it). */
  holdAt = Infinity;
  private next = 0;

  constructor(
    private readonly url: string,
    private readonly plan: PlannedOrder[],
    private readonly concurrency: number,
    private readonly random: Random,
    private readonly signal?: AbortSignal,
    /** A client gives an order up after this long without an answer (a slow restart can take a while). */
    private readonly giveUpAfterMs = 120_000,
  ) {}

  /** Share of the plan sent so far. */
  progress(): number {
    return this.next / this.plan.length;
  }

  async run(): Promise<void> {
    await Promise.all(Array.from({ length: this.concurrency }, () => this.client()));
    this.finished = true;
  }

  private async client(): Promise<void> {
    while (this.next < this.plan.length && !this.signal?.aborted) {
      if (this.progress() >= this.holdAt) {
        await sleep(10);
        continue;
      }
      const order = this.plan[this.next++]!;
      await this.place(order);
    }
  }

  private async place(order: PlannedOrder): Promise<void> {
    const deadline = Date.now() + this.giveUpAfterMs;
    while (!this.signal?.aborted && Date.now() < deadline) {
      const res = await fetch(`${this.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': order.key },
        body: JSON.stringify({ productId: order.productId, quantity: order.quantity, userId: 'chaos' }),
        signal: AbortSignal.timeout(10_000),
      }).catch(() => undefined);
      // Reading the body can fail too: the server may die mid-response. Then it is a retry.
      const body = res ? await res.json().catch(() => undefined) : undefined;
      if (res?.status === 201 && body) {
        this.accepted.push((body as { id: string }).id);
        return;
      }
      if (res && res.status >= 400 && res.status < 500) {
        this.refused += 1;
        return;
      }
      // A 500 is a bug, not chaos: count it (the run fails) but keep the order going.
      if (res && res.status >= 500 && res.status !== 503) this.serverErrors += 1;
      // No answer (the server died) or 503 (the database is down): same request, same key.
      this.retries += 1;
      await sleep(50 + this.random() * 150);
    }
  }
}

async function settle(pool: Pool, timeoutMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [outbox, orders] = await Promise.all([countOutbox(pool), countOrdersByStatus(pool)]);
    if (outbox.pending === 0 && orders.PENDING === 0) return;
    if (Date.now() > deadline) {
      log.warn(`not settled after ${timeoutMs} ms: ${outbox.pending} event(s) in the outbox, ${orders.PENDING} order(s) PENDING`);
      return;
    }
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
