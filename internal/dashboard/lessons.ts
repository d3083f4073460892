// The dashboard's buttons: the same lessons as the CLIs, run inside the server against itself.
// "Place 50 orders" is the stress test, through this server's own public API; "Replay 3
// duplicates" is the replay, through this server's outbox and workers.
import { createApiClient } from '../client/api-client.ts';
import type { Pool } from '../db/pool.ts';
import { AppError } from '../errors/errors.ts';
import type { InventoryConsumer } from '../inventory/consumer.ts';
import type { Logger } from '../log/logger.ts';
import { runReplay } from '../replay/replay.ts';
import { runStressTest, type InventorySide } from '../stress/stress.ts';

export interface OrdersLessonResult {
  accepted: number;
  failed: number;
  confirmed: number;
  rejected: number;
  drained: boolean;
  msAfterLastAccept: number | null;
  deliveriesByWorker: Record<string, number>;
  ok: boolean;
  problems: string[];
}

export interface ReplayLessonResult {
  replayed: number;
  skipped: number;
  stockUnchanged: boolean;
  ok: boolean;
}

export interface Lessons {
  placeOrders(count: number): Promise<OrdersLessonResult>;
  replayDuplicates(count: number): Promise<ReplayLessonResult>;
}

export interface LessonDeps {
  pool: Pool;
  /** The in-process consumer; undefined when the inventory is another service (TRANSPORT=nats). */
  consumer: InventoryConsumer | undefined;
  /** TRANSPORT=nats: where "Place 50 orders" reads the stock (the inventory service). */
  inventory?: InventorySide;
  logger: Logger;
  /** This server's own URL; known only once it listens. */
  serverUrl: () => string;
  nudge: () => void;
  leaseMs: number;
}

const WAIT_TIMEOUT_MS = 30_000;

export function createLessons(deps: LessonDeps): Lessons {
  const log = deps.logger.child('Dashboard');
  // One lesson at a time: two overlapping runs would muddle each other's before/after checks.
  let running: string | undefined;
  async function exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (running) throw new AppError('CONFLICT', `"${running}" is still running; try again when it has finished`);
    running = name;
    try {
      return await work();
    } finally {
      running = undefined;
    }
  }

  return {
    placeOrders(count) {
      return exclusive(`place ${count} orders`, async () => {
        log.info(`button: placing ${count} orders at once through POST /orders`);
        const result = await runStressTest(
          { orders: count, concurrency: count, quantity: 1, productIds: [], wait: true, waitTimeoutMs: WAIT_TIMEOUT_MS, userId: 'dashboard' },
          { client: createApiClient(deps.serverUrl()), inventory: deps.inventory },
        );
        return {
          accepted: result.accepted,
          failed: result.failed,
          confirmed: result.drain.confirmed,
          rejected: result.drain.rejected,
          drained: result.drain.drained,
          msAfterLastAccept: result.drain.msAfterLastAccept,
          deliveriesByWorker: result.deliveriesByWorker,
          ok: result.ok,
          problems: result.invariant.problems,
        };
      });
    },
    replayDuplicates(count) {
      return exclusive(`replay ${count} duplicates`, async () => {
        const consumer = deps.consumer;
        if (!consumer) {
          throw new AppError('CONFLICT', 'with TRANSPORT=nats the inventory is another service: replay with `npm run replay -- --transport nats`');
        }
        log.info(`button: delivering the ${count} most recently processed messages again`);
        const result = await runReplay(
          { count, messageIds: [], fresh: false, freshProductId: 'widget', waitTimeoutMs: WAIT_TIMEOUT_MS },
          { pool: deps.pool, consumer, logger: deps.logger, serverRunning: true, nudge: deps.nudge, leaseMs: deps.leaseMs },
        );
        return {
          replayed: result.replayed.length,
          skipped: result.skips.length,
          stockUnchanged: Object.entries(result.stockBefore).every(([id, n]) => result.stockAfter[id] === n),
          ok: result.ok,
        };
      });
    },
  };
}
