// The stress test: fire many orders at once through the public API, wait until the relay has
// drained the outbox, then check the invariant the pattern promises. In-process it only talks
// HTTP, so it tests the running server exactly as users reach it. Over NATS the stock lives in
// the inventory service's own database, which no order API shows: the stress test is a
// verifier, so it reads that database directly (`inventory` below).
import pLimit from 'p-limit';
import type { ApiClient, ApiOrder, ApiStats } from '../client/api-client.ts';
import type { TransportMode } from '../config/config.ts';

export interface StressOptions {
  orders: number;
  concurrency: number;
  quantity: number;
  /** Products to order, round-robin; all of GET /products when empty. */
  productIds: string[];
  /** Wait for the outbox to drain and every order to settle, then check the invariant. */
  wait: boolean;
  waitTimeoutMs: number;
  /** Stamped on every order so this run's orders can be told apart. */
  userId: string;
  /**
   * Share of the accepted orders to cancel (0..1, default 0), spread evenly over the run. Every
   * other one is cancelled right after its 201 (usually while PENDING, racing its OrderCreated);
   * the rest once it has settled (after confirmation). The invariant then covers both.
   */
  cancelRatio?: number;
}

/** What the stress test reads from the inventory service's database (TRANSPORT=nats). */
export interface InventorySide {
  read(): Promise<InventorySnapshot>;
}

export interface InventorySnapshot {
  stock: Record<string, number>;
  /** Messages its handlers took from the broker, by handler (processed_messages.handled_by: Inventory-N). */
  handledBy: Record<string, number>;
  duplicatesSkipped: number;
  /** Replies (StockReserved / StockRejected) still in its outbox. */
  replyOutbox: number;
  /** Orders whose OrderCancelled it has applied, ever (monotonic): a run waits for its own. */
  cancellationsApplied: number;
}

export interface StressDeps {
  client: ApiClient;
  /**
   * TRANSPORT=nats: the inventory service's database, where stock, its inbox and its reply
   * outbox are. Unset: in-process, where the order API's database holds all of it.
   */
  inventory?: InventorySide;
  /** Called after every response: how many are done, accepted and failed so far. */
  onProgress?: (done: number, accepted: number, failed: number) => void;
  /** Phases worth telling a watching user about. */
  onPhase?: (message: string) => void;
  /** Stops sending new orders and skips the wait (Ctrl-C). */
  signal?: AbortSignal;
  now?: () => number;
}

export interface ProductCheck {
  productId: string;
  before: number;
  after: number;
  confirmedQuantity: number;
  holds: boolean;
}

export interface StressResult {
  url: string;
  transport: TransportMode;
  /** Where the stock was read: the order API (in-process) or the inventory service's database. */
  stockSource: 'order-api' | 'inventory-database';
  /** The userId on every order of this run. */
  userId: string;
  requested: number;
  concurrency: number;
  sent: number;
  accepted: number;
  failed: number;
  failedByStatus: Record<string, number>;
  durationMs: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p95: number; max: number };
  drain: {
    waited: boolean;
    drained: boolean;
    /**
     * From the last accepted order to the last one settled, measured on the database clock
     * (the last order's created_at to the last settled order's updated_at), so it does not
     * depend on how often this client polls. Null unless every order settled.
     */
    msAfterLastAccept: number | null;
    confirmed: number;
    rejected: number;
    /** Accepted orders still PENDING, or not found at all, when the wait ended. */
    unsettled: number;
    /** Events left in the order outbox, and over NATS in the inventory's reply outbox too. */
    outboxLeft: number;
    /** Orders of this run CANCELLED when the wait ended (their stock given back, or never taken). */
    cancelled: number;
  };
  /** --cancel-ratio: what the cancellations did. */
  cancellations: {
    requested: number;
    /** Answered 200: sent right after the 201, and after the order had settled. */
    early: number;
    afterSettling: number;
    /** 409: the order had been REJECTED, nothing to cancel. */
    notCancellable: number;
    failed: number;
  };
  /**
   * Deliveries that reached the consumer during this run, by who handed them over: the relay
   * workers in-process (Worker-N), the inventory service's handlers over NATS (Inventory-N).
   */
  deliveriesByWorker: Record<string, number>;
  /** Over NATS: events the order service's relay workers published during this run (its /metrics). */
  publishedByWorker: Record<string, number>;
  duplicatesSkipped: number;
  stock: ProductCheck[];
  invariant: { checked: boolean; holds: boolean; problems: string[] };
  /** Everything accepted and (when waited) the invariant holds. */
  ok: boolean;
}

const POLL_MS = 50;

export async function runStressTest(options: StressOptions, deps: StressDeps): Promise<StressResult> {
  const { client } = deps;
  const now = deps.now ?? (() => performance.now());
  const phase = deps.onPhase ?? (() => {});

  const products = await client.products();
  const productIds = options.productIds.length > 0 ? options.productIds : products.map((p) => p.id);
  const view = pipelineView(deps);
  if (options.wait) await waitForQuietOutbox(view, options.waitTimeoutMs, phase, deps.signal);
  const before = await view.snapshot();

  phase(`firing ${options.orders} orders, ${options.concurrency} at a time, at ${client.baseUrl}`);
  const limit = pLimit(options.concurrency);
  const latencies: number[] = [];
  const accepted: ApiOrder[] = [];
  const cancels = { requested: 0, early: 0, afterSettling: 0, notCancellable: 0, failed: 0 };
  const cancelIds = new Set<string>();
  const cancelled: Array<Promise<void>> = [];
  const picks = cancelPicker(options.cancelRatio ?? 0);
  const failedByStatus: Record<string, number> = {};
  let done = 0;
  const started = now();
  await Promise.all(
    Array.from({ length: options.orders }, (_, i) =>
      limit(async () => {
        if (deps.signal?.aborted) return;
        const t0 = now();
        const result = await client.placeOrder({
          productId: productIds[i % productIds.length]!,
          quantity: options.quantity,
          userId: options.userId,
        });
        latencies.push(now() - t0);
        done += 1;
        if (result.order) {
          accepted.push(result.order);
          const pick = picks();
          if (pick) {
            cancels.requested += 1;
            cancelIds.add(result.order.id);
            cancelled.push(cancelOrder(client, result.order.id, pick, cancels, options.waitTimeoutMs));
          }
        } else {
          const key = result.status === 0 ? 'no response' : String(result.status);
          failedByStatus[key] = (failedByStatus[key] ?? 0) + 1;
        }
        deps.onProgress?.(done, accepted.length, done - accepted.length);
      }),
    ),
  );
  await Promise.all(cancelled);
  const durationMs = now() - started;
  const failed = done - accepted.length;

  const result: StressResult = {
    url: client.baseUrl,
    transport: deps.inventory ? 'nats' : 'in-process',
    stockSource: deps.inventory ? 'inventory-database' : 'order-api',
    userId: options.userId,
    requested: options.orders,
    concurrency: options.concurrency,
    sent: done,
    accepted: accepted.length,
    failed,
    failedByStatus,
    durationMs,
    requestsPerSecond: durationMs > 0 ? (done / durationMs) * 1000 : 0,
    latencyMs: latencySummary(latencies),
    drain: { waited: false, drained: false, msAfterLastAccept: null, confirmed: 0, rejected: 0, unsettled: accepted.length, outboxLeft: 0, cancelled: 0 },
    cancellations: cancels,
    deliveriesByWorker: {},
    publishedByWorker: {},
    duplicatesSkipped: 0,
    stock: [],
    invariant: { checked: false, holds: false, problems: [] },
    ok: false,
  };
  const allAccepted = accepted.length === options.orders && cancels.failed === 0;

  if (!options.wait || deps.signal?.aborted) {
    result.ok = allAccepted;
    return result;
  }

  phase(`waiting for the outbox to drain and ${accepted.length} orders to settle`);
  const cancelsToApply = cancels.early + cancels.afterSettling;
  const settled = await waitForSettled(view, client, accepted, options.waitTimeoutMs, deps.signal, {
    before: before.cancellationsApplied ?? 0,
    expected: view.cancellationsApplied ? cancelsToApply : 0,
  });
  const after = await view.snapshot();
  const outboxLeft = after.outboxLeft;
  const confirmed = settled.filter((o) => o.status === 'CONFIRMED');
  const cancelledOrders = settled.filter((o) => o.status === 'CANCELLED');
  const unsettled = accepted.length - settled.length;
  // Over NATS a CANCELLED order's OrderCancelled may still be on its way to the inventory.
  const cancelsMissing = after.cancellationsApplied === undefined
    ? 0
    : Math.max(0, cancelsToApply - (after.cancellationsApplied - (before.cancellationsApplied ?? 0)));

  result.drain = {
    waited: true,
    drained: unsettled === 0 && outboxLeft === 0 && cancelsMissing === 0,
    msAfterLastAccept: unsettled === 0 && accepted.length > 0 ? settledAfterLastAccept(accepted, settled) : null,
    confirmed: confirmed.length,
    rejected: settled.filter((o) => o.status === 'REJECTED').length,
    unsettled,
    outboxLeft,
    cancelled: cancelledOrders.length,
  };
  result.deliveriesByWorker = difference(after.deliveredBy, before.deliveredBy);
  result.publishedByWorker = difference(after.publishedBy, before.publishedBy);
  result.duplicatesSkipped = after.duplicatesSkipped - before.duplicatesSkipped;
  // Stock from the side that owns it; the confirmed quantities from the orders (the order database).
  // A cancelled order nets zero: its reservation (if any) was given back, in order, after it.
  result.stock = Object.entries(before.stock).map(([productId, was]) => {
    const now = after.stock[productId] ?? was;
    const confirmedQuantity = confirmed.filter((o) => o.productId === productId).reduce((sum, o) => sum + o.quantity, 0);
    return { productId, before: was, after: now, confirmedQuantity, holds: was - now === confirmedQuantity };
  });

  const problems: string[] = [];
  for (const check of result.stock.filter((c) => !c.holds)) {
    problems.push(
      `${check.productId}: stock fell by ${check.before - check.after} but this run's confirmed orders took ${check.confirmedQuantity}`,
    );
  }
  if (!deps.inventory && confirmed.length > 0 && result.stock.every((c) => c.before === c.after)) {
    problems.push('no stock moved in the order database: is the server running with TRANSPORT=nats? Then run the stress test with --transport nats');
  }
  if (unsettled > 0) problems.push(`${unsettled} accepted order(s) still PENDING after ${options.waitTimeoutMs} ms`);
  if (cancelsMissing > 0) problems.push(`${cancelsMissing} cancellation(s) not yet applied by the inventory after ${options.waitTimeoutMs} ms`);
  const notCancelled = settled.filter((o) => cancelIds.has(o.id) && o.status !== 'CANCELLED' && o.status !== 'REJECTED');
  if (notCancelled.length > 0) problems.push(`${notCancelled.length} order(s) answered 200 to a cancel but are ${notCancelled[0]!.status}`);
  if (outboxLeft > 0) problems.push(`${outboxLeft} event(s) still in the outbox${deps.inventory ? 'es (order events and inventory replies)' : ''}`);
  result.invariant = { checked: true, holds: problems.length === 0, problems };
  result.ok = allAccepted && result.invariant.holds;
  return result;
}

/** The numbers the run compares before and after, from wherever each one lives. */
interface Snapshot {
  stock: Record<string, number>;
  deliveredBy: Record<string, number>;
  publishedBy: Record<string, number>;
  duplicatesSkipped: number;
  outboxLeft: number;
  /** Over NATS: cancellations the inventory applied, ever; in-process the empty outbox says it. */
  cancellationsApplied?: number;
}

interface PipelineView {
  snapshot(): Promise<Snapshot>;
  /** Events not yet handed over, in every outbox of the pipeline. */
  outboxLeft(): Promise<number>;
  /** Over NATS only: a published cancellation may still be on its way to the inventory. */
  cancellationsApplied?(): Promise<number>;
}

function pipelineView(deps: StressDeps): PipelineView {
  const { client, inventory } = deps;
  if (!inventory) {
    // In-process: one database behind the order API holds the outbox, the inbox and the stock.
    return {
      async snapshot() {
        const stats = await client.stats();
        const stock = Object.fromEntries((await client.products()).map((p) => [p.id, p.stock]));
        return { stock, deliveredBy: stats.deliveriesByWorker, publishedBy: {}, duplicatesSkipped: stats.duplicatesSkipped, outboxLeft: outboxSize(stats) };
      },
      // No cancellationsApplied: in-process an event leaves the outbox only after its consumer committed.
      outboxLeft: async () => outboxSize(await client.stats()),
    };
  }
  // Over NATS: the order API for its outbox and its relay's publishes; the inventory's own
  // database for the stock, the inbox (who handled what) and the reply outbox.
  return {
    async snapshot() {
      const [stats, published, side] = await Promise.all([client.stats(), client.relayDeliveries(), inventory.read()]);
      return {
        stock: side.stock,
        deliveredBy: side.handledBy,
        publishedBy: published,
        duplicatesSkipped: side.duplicatesSkipped,
        outboxLeft: outboxSize(stats) + side.replyOutbox,
        cancellationsApplied: side.cancellationsApplied,
      };
    },
    cancellationsApplied: async () => (await inventory.read()).cancellationsApplied,
    async outboxLeft() {
      const [stats, side] = await Promise.all([client.stats(), inventory.read()]);
      return outboxSize(stats) + side.replyOutbox;
    },
  };
}

/** Earlier events still in flight would move stock during our run and muddle the check. */
async function waitForQuietOutbox(view: PipelineView, timeoutMs: number, phase: (m: string) => void, signal?: AbortSignal) {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    const left = await view.outboxLeft();
    if (left === 0 || Date.now() > deadline || signal?.aborted) return;
    if (!told) phase(`waiting for ${left} earlier event(s) in the outbox to drain first`);
    told = true;
    await sleep(POLL_MS * 4);
  }
}

/** Polls until the outbox is empty and every accepted order is settled; returns the settled ones. */
async function waitForSettled(
  view: PipelineView, client: ApiClient, accepted: ApiOrder[], timeoutMs: number, signal: AbortSignal | undefined,
  cancels: { before: number; expected: number },
): Promise<ApiOrder[]> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(accepted.map((o) => o.id));
  const settled: ApiOrder[] = [];
  for (;;) {
    // Cheap question first; the per-order lookups only once the relay says it is done.
    if ((await view.outboxLeft()) === 0 || Date.now() > deadline) {
      for (const order of await client.orders([...pending])) {
        if (order.status !== 'PENDING') {
          pending.delete(order.id);
          settled.push(order);
        }
      }
      const cancelsDone = cancels.expected === 0 || !view.cancellationsApplied || (await view.cancellationsApplied()) - cancels.before >= cancels.expected;
      if ((pending.size === 0 && cancelsDone) || Date.now() > deadline) return settled;
    }
    if (signal?.aborted) return settled;
    await sleep(POLL_MS);
  }
}

/**
 * Which accepted orders to cancel: `ratio` of them, spread evenly (deterministic, so a run can
 * be repeated); alternately right away and after settling.
 */
function cancelPicker(ratio: number): () => 'early' | 'afterSettling' | undefined {
  let seen = 0;
  let picked = 0;
  return () => {
    seen += 1;
    if (Math.floor(seen * ratio) <= picked) return undefined;
    picked += 1;
    return picked % 2 === 1 ? 'early' : 'afterSettling';
  };
}

/** Cancels one order, at once or once it is no longer PENDING (polled); counts what the API said. */
async function cancelOrder(
  client: ApiClient, id: string, when: 'early' | 'afterSettling',
  counts: StressResult['cancellations'], timeoutMs: number,
): Promise<void> {
  if (when === 'afterSettling') {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && (await client.orders([id]))[0]?.status === 'PENDING') await sleep(POLL_MS);
  }
  const result = await client.cancelOrder(id);
  if (result.status === 200) counts[when] += 1;
  else if (result.status === 409) counts.notCancellable += 1;
  else counts.failed += 1;
}

/** The last settling minus the last accept, both as the database stamped them on the orders. */
function settledAfterLastAccept(accepted: readonly ApiOrder[], settled: readonly ApiOrder[]): number {
  const latest = (orders: readonly ApiOrder[], at: (o: ApiOrder) => string) =>
    orders.reduce((max, o) => Math.max(max, Date.parse(at(o))), -Infinity);
  // A batch may settle early orders before the last one is accepted; never below zero.
  return Math.max(0, latest(settled, (o) => o.updatedAt) - latest(accepted, (o) => o.createdAt));
}

function outboxSize(stats: ApiStats): number {
  return stats.outbox.pending + stats.outbox.inFlight + stats.outbox.retrying;
}

function difference(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [worker, count] of Object.entries(after)) {
    const delta = count - (before[worker] ?? 0);
    if (delta > 0) out[worker] = delta;
  }
  return out;
}

export function latencySummary(samples: readonly number[]): { p50: number; p95: number; max: number } {
  if (samples.length === 0) return { p50: 0, p95: 0, max: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), max: sorted[sorted.length - 1]! };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
