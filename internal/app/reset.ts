// A fresh start for the demo and chaos runs: no orders, no events, no memory of messages,
// every product back at its seed stock. One transaction, each table emptied by its owner.
import type { Pool } from '../db/pool.ts';
import { withTransaction } from '../db/transaction.ts';
import { forgetAllMessages } from '../inventory/processed.ts';
import { restockAll, SEED_STOCK } from '../inventory/stock.ts';
import { deleteAllOrders } from '../orders/orders.ts';
import { clearDeadLetters } from '../outbox/dead-letters.ts';
import { clearOutbox } from '../outbox/outbox.ts';

export async function resetDemoData(pool: Pool): Promise<void> {
  await withTransaction(pool, async (tx) => {
    // Emptying a big history is slow, not stuck.
    await tx.query('SET LOCAL statement_timeout = 0');
    await clearOutbox(tx);
    await clearDeadLetters(tx);
    await forgetAllMessages(tx);
    await deleteAllOrders(tx);
    await restockAll(tx, SEED_STOCK);
  });
}
