// Replay: deliver already-processed messages again and watch the consumer skip them.
//
// Two paths, and the output says which one ran:
// - a server is running: the messages go back into the outbox and the server's own workers
//   redeliver them, exactly as after a relay crash between "consumer committed" and "row deleted";
// - no server: each message is handed straight to the Inventory consumer in this process.
import type { Pool } from '../db/pool.ts';
import { AppError } from '../errors/errors.ts';
import { parseOrderEvent, type InventoryConsumer } from '../inventory/consumer.ts';
import { countConsumed, findProcessed, lastSkipId, recentProcessed, skipsSince, type MessageCopy } from '../inventory/processed.ts';
import { listProducts } from '../inventory/stock.ts';
import type { Logger } from '../log/logger.ts';
import { placeOrder } from '../orders/orders.ts';
import { countWaiting, createOutboxStore, enqueueAgain } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';
import { traceTag } from '../tracing/context.ts';

export type ReplayPath = 'server-workers' | 'in-process';

export interface ReplayOptions {
  /** Replay the most recent `count` processed messages (ignored when messageIds is given). */
  count: number;
  messageIds: string[];
  /** First create one new order event and deliver it, so the replay works on an empty database. */
  fresh: boolean;
  freshProductId: string;
  waitTimeoutMs: number;
}

export interface ReplayDeps {
  pool: Pool;
  consumer: InventoryConsumer;
  logger: Logger;
  /** True when a server's workers are relaying this database's outbox. */
  serverRunning: boolean;
  /** Wakes the server's workers at once, when it runs in this process (the demo). */
  nudge?: () => void;
  leaseMs: number;
}

export interface ReplayResult {
  path: ReplayPath;
  fresh: { messageId: string; orderId: string; firstDeliveredBy: string; firstOutcome: string } | null;
  replayed: string[];
  /** Requested ids that were never processed (or processed before copies were kept). */
  notReplayable: string[];
  skips: Array<{ messageId: string; handledBy: string }>;
  /** Replayed messages nobody skipped within the wait. */
  unanswered: string[];
  stockBefore: Record<string, number>;
  stockAfter: Record<string, number>;
  processedBefore: number;
  processedAfter: number;
  ok: boolean;
}

const POLL_MS = 50;

export async function runReplay(options: ReplayOptions, deps: ReplayDeps): Promise<ReplayResult> {
  const log = deps.logger.child('Replay');
  const path: ReplayPath = deps.serverRunning ? 'server-workers' : 'in-process';
  log.info(
    path === 'server-workers'
      ? `a server is running: putting processed messages back into the outbox for its workers to redeliver`
      : `no server is running: handing processed messages straight to the Inventory consumer in this process`,
  );

  const fresh = options.fresh ? await deliverFresh(options, deps, log) : null;

  const { copies, notReplayable } = await pickMessages(deps.pool, options, fresh?.messageId);
  for (const id of notReplayable) log.warn(`message ${id} cannot be replayed: never processed, or processed before copies were kept`);
  if (copies.length === 0) log.warn('nothing to replay: place an order first, or use --fresh');

  const stockBefore = await stockMap(deps.pool);
  const processedBefore = await processedCount(deps.pool);
  const watermark = await lastSkipId(deps.pool);
  const ids = copies.map((c) => c.messageId);

  if (path === 'server-workers') {
    for (const copy of copies) {
      // The copy keeps its position (sequence): the duplicate is the same event, in the same place.
      const again = await enqueueAgain(deps.pool, { ...copy, aggregateId: aggregateOf(copy) });
      log.info((again ? `message ${copy.messageId} → outbox again (a duplicate)` : `message ${copy.messageId} is still in the outbox; its worker will finish it`) + traceTag(copy.headers));
    }
    deps.nudge?.();
    await waitFor(
      async () => (await skipsSince(deps.pool, watermark, ids)).length >= ids.length && (await countWaiting(deps.pool, ids)) === 0,
      options.waitTimeoutMs,
    );
  } else {
    for (const copy of copies) {
      try {
        await deps.consumer.handle(copy, 'Replay');
      } catch (error) {
        log.warn(`message ${copy.messageId} failed: ${(error as Error).message}`);
      }
    }
  }

  const skips = await skipsSince(deps.pool, watermark, ids);
  // In-process, the consumer's own SKIPPING lines were printed here already.
  if (path === 'server-workers') {
    for (const skip of skips) log.info(`message ${skip.messageId} skipped by ${skip.handledBy}`);
  }
  const skipped = new Set(skips.map((s) => s.messageId));
  const unanswered = ids.filter((id) => !skipped.has(id));
  if (unanswered.length > 0 && path === 'server-workers') {
    log.warn(
      `${unanswered.length} duplicate(s) not delivered within ${options.waitTimeoutMs} ms: is the server using this same database?`,
    );
  }
  const stockAfter = await stockMap(deps.pool);
  const processedAfter = await processedCount(deps.pool);
  const stockUnchanged = Object.entries(stockBefore).every(([id, n]) => stockAfter[id] === n);
  return {
    path,
    fresh,
    replayed: ids,
    notReplayable,
    skips,
    unanswered,
    stockBefore,
    stockAfter,
    processedBefore,
    processedAfter,
    ok: ids.length > 0 && notReplayable.length === 0 && unanswered.length === 0 && stockUnchanged && processedAfter === processedBefore,
  };
}

/** A brand-new order event, delivered once for real, so there is something to replay. */
async function deliverFresh(options: ReplayOptions, deps: ReplayDeps, log: Logger): Promise<ReplayResult['fresh']> {
  const { order, messageId } = await placeOrder(deps.pool, { productId: options.freshProductId, quantity: 1, userId: 'replay-fresh' });
  log.info(`--fresh: order ${order.id.slice(0, 8)}… placed (1 × ${order.productId}), message ${messageId}; first delivery:`);
  if (deps.serverRunning) {
    deps.nudge?.();
    await waitFor(async () => (await findProcessed(deps.pool, [messageId])).length > 0 && (await countWaiting(deps.pool, [messageId])) === 0, options.waitTimeoutMs);
  } else {
    // No server, so this process relays the outbox itself, the same way a worker does.
    const relay = new Relay(
      {
        store: createOutboxStore(deps.pool, { batchSize: 10, leaseMs: deps.leaseMs }),
        deliver: (event, worker) => deps.consumer.handle(event, worker),
        logger: deps.logger,
      },
      { workers: 1, pollIntervalMs: POLL_MS, namePrefix: 'Replay-' },
    );
    await waitFor(async () => (await relay.runOnce('Replay-1')) === 0 && (await countWaiting(deps.pool, [messageId])) === 0, options.waitTimeoutMs);
  }
  const [processed] = await findProcessed(deps.pool, [messageId]);
  if (!processed) throw new AppError('INTERNAL', `the fresh message ${messageId} was not delivered within ${options.waitTimeoutMs} ms`);
  log.info(`first delivery of ${messageId}: ${processed.outcome} by ${processed.handledBy}; now the duplicate:`);
  return { messageId, orderId: order.id, firstDeliveredBy: processed.handledBy, firstOutcome: processed.outcome };
}

/** The copies to replay: `messageIds` (plus a fresh one), or the `count` most recent. */
export async function pickMessages(pool: Pool, options: Pick<ReplayOptions, 'count' | 'messageIds'>, freshId: string | undefined) {
  const wanted = freshId ? [freshId, ...options.messageIds] : options.messageIds;
  if (wanted.length === 0) {
    const recent = await recentProcessed(pool, options.count);
    return { copies: recent.flatMap((m) => (m.copy ? [m.copy] : [])), notReplayable: [] as string[] };
  }
  const found = await findProcessed(pool, wanted);
  const copies = found.flatMap((m) => (m.copy ? [m.copy] : []));
  const have = new Set(copies.map((c) => c.messageId));
  return { copies, notReplayable: wanted.filter((id) => !have.has(id.toLowerCase())) };
}

export function aggregateOf(copy: MessageCopy): string {
  return copy.aggregateId ?? parseOrderEvent(copy).order.orderId;
}

export async function stockMap(pool: Pool): Promise<Record<string, number>> {
  return Object.fromEntries((await listProducts(pool)).map((p) => [p.id, p.stock]));
}

export async function processedCount(pool: Pool): Promise<number> {
  const { processed } = await countConsumed(pool);
  return processed.applied + processed.rejected;
}

export async function waitFor(done: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
