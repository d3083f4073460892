// `npm run replay -- --dead-letters`: once the cause of the failures is fixed, put the dead
// letters back into the outbox and let them be delivered (by the server's workers if one is
// running, or here).
import type { Pool } from '../db/pool.ts';
import type { InventoryConsumer } from '../inventory/consumer.ts';
import { findProcessed } from '../inventory/processed.ts';
import type { Logger } from '../log/logger.ts';
import { listDeadLetters, redriveDeadLetters } from '../outbox/dead-letters.ts';
import { countWaiting, createOutboxStore } from '../outbox/outbox.ts';
import { Relay } from '../relay/relay.ts';

export interface RedriveResult {
  redriven: string[];
  /** Re-driven messages the consumer has now processed. */
  delivered: number;
  /** Re-driven messages that failed again and are back in dead_letters. */
  deadAgain: number;
  ok: boolean;
}

export interface RedriveDeps {
  pool: Pool;
  consumer: InventoryConsumer;
  logger: Logger;
  serverRunning: boolean;
  leaseMs: number;
  maxAttempts: number;
}

export async function redriveAndDeliver(messageIds: string[], waitTimeoutMs: number, deps: RedriveDeps): Promise<RedriveResult> {
  const log = deps.logger.child('Replay');
  const ids = await redriveDeadLetters(deps.pool, messageIds.length > 0 ? messageIds : undefined);
  if (ids.length === 0) {
    log.info('no dead letters to re-drive');
    return { redriven: [], delivered: 0, deadAgain: 0, ok: messageIds.length === 0 };
  }
  log.info(`re-drove ${ids.length} dead letter(s) into the outbox; ${deps.serverRunning ? "the server's workers" : 'this process'} will deliver them`);

  const relay = deps.serverRunning
    ? undefined
    : new Relay(
        {
          store: createOutboxStore(deps.pool, { batchSize: 10, leaseMs: deps.leaseMs }),
          deliver: (event, worker) => deps.consumer.handle(event, worker),
          logger: deps.logger,
        },
        { workers: 1, pollIntervalMs: 50, maxAttempts: deps.maxAttempts, namePrefix: 'Replay-' },
      );
  const deadline = Date.now() + waitTimeoutMs;
  while ((await countWaiting(deps.pool, ids)) > 0 && Date.now() < deadline) {
    if (relay) await relay.runOnce('Replay-1');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const delivered = (await findProcessed(deps.pool, ids)).length;
  const dead = new Set((await listDeadLetters(deps.pool, 10_000)).map((d) => d.messageId));
  const deadAgain = ids.filter((id) => dead.has(id)).length;
  log.info(`re-driven: ${delivered} delivered, ${deadAgain} dead again, ${ids.length - delivered - deadAgain} still waiting`);
  const waiting = await countWaiting(deps.pool, ids);
  return { redriven: ids, delivered, deadAgain, ok: delivered === ids.length && deadAgain === 0 && waiting === 0 };
}
