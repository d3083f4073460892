// A fresh start for the demo and chaos runs: no orders, no events, no memory of messages,
// every product back at its seed stock. One transaction, each table emptied by its owner.
import type { Config } from '../config/config.ts';
import { redact } from '../db/database.ts';
import type { Pool } from '../db/pool.ts';
import { StartupError } from '../errors/errors.ts';
import { withTransaction } from '../db/transaction.ts';
import { forgetAllMessages } from '../inventory/processed.ts';
import { clearStockAnswers } from '../inventory/answers.ts';
import { clearPositions } from '../inventory/positions.ts';
import { restockAll, SEED_STOCK } from '../inventory/stock.ts';
import { deleteAllOrders } from '../orders/orders.ts';
import { clearDeadLetters } from '../outbox/dead-letters.ts';
import { clearOutbox } from '../outbox/outbox.ts';

/**
 * The demo and chaos runs wipe the database they run on. The embedded one is theirs to wipe;
 * someone's DATABASE_URL only when the command was given --yes. Checked before connecting, so
 * a refusal writes nothing (not even the migrations).
 */
export function refuseToWipeUnlessConfirmed(config: Pick<Config, 'databaseUrl'>, confirmed: boolean, command: string): void {
  if (config.databaseUrl === undefined || confirmed) return;
  throw new StartupError(
    'CONFIRMATION_REQUIRED',
    `DATABASE_URL is set: ${command} would delete every order, outbox event, dead letter and processed message in ` +
      `${redact(config.databaseUrl)} — pass --yes to go ahead`,
  );
}

export async function resetDemoData(pool: Pool): Promise<void> {
  await withTransaction(pool, async (tx) => {
    // Emptying a big history is slow, not stuck.
    await tx.query('SET LOCAL statement_timeout = 0');
    await clearOutbox(tx);
    await clearDeadLetters(tx);
    await forgetAllMessages(tx);
    await clearStockAnswers(tx);
    await clearPositions(tx);
    await deleteAllOrders(tx);
    await restockAll(tx, SEED_STOCK);
  });
}
