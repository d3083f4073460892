// The end-of-run audit: what the client was told versus what the database holds.
import type { Queryable } from '../db/pool.ts';
import { countConsumed, countOrdersAppliedTwice } from '../inventory/processed.ts';
import { listProducts, SEED_STOCK } from '../inventory/stock.ts';
import { confirmedQuantityByProduct, countOrdersByStatus, getOrders } from '../orders/orders.ts';
import { countDeadLetters } from '../outbox/dead-letters.ts';
import { countOutbox } from '../outbox/outbox.ts';

export interface Audit {
  accepted: number;
  confirmed: number;
  rejected: number;
  /** Accepted orders missing from the database or never settled. */
  lost: number;
  /** Orders in the database the client was never told about (a retry that made a second order). */
  extraOrders: number;
  appliedTwice: number;
  /** Products whose stock did not fall by exactly their confirmed quantities. */
  stockMismatches: string[];
  duplicatesSkipped: number;
  deadLettersLeft: number;
  outboxLeft: number;
  ok: boolean;
}

/** `acceptedIds`: every order id the client received a 201 for. Assumes a fresh database. */
export async function audit(db: Queryable, acceptedIds: readonly string[]): Promise<Audit> {
  const found = [];
  for (let i = 0; i < acceptedIds.length; i += 1000) found.push(...(await getOrders(db, acceptedIds.slice(i, i + 1000))));
  const settled = found.filter((o) => o.status !== 'PENDING');
  const confirmed = settled.filter((o) => o.status === 'CONFIRMED').length;

  const taken = await confirmedQuantityByProduct(db);
  const stockMismatches = (await listProducts(db))
    .filter((p) => SEED_STOCK - p.stock !== (taken[p.id] ?? 0))
    .map((p) => `${p.id}: stock fell by ${SEED_STOCK - p.stock}, confirmed orders took ${taken[p.id] ?? 0}`);
  const outbox = await countOutbox(db);
  const inDatabase = await countOrdersByStatus(db);
  const uniqueAccepted = new Set(acceptedIds).size;
  const result = {
    accepted: acceptedIds.length,
    confirmed,
    rejected: settled.length - confirmed,
    lost: acceptedIds.length - settled.length,
    extraOrders: inDatabase.PENDING + inDatabase.CONFIRMED + inDatabase.REJECTED - uniqueAccepted,
    appliedTwice: await countOrdersAppliedTwice(db),
    stockMismatches,
    duplicatesSkipped: (await countConsumed(db)).duplicatesSkipped,
    deadLettersLeft: await countDeadLetters(db),
    outboxLeft: outbox.pending,
  };
  return {
    ...result,
    ok: result.lost === 0 && result.extraOrders === 0 && uniqueAccepted === acceptedIds.length && result.appliedTwice === 0 && stockMismatches.length === 0 && result.outboxLeft === 0 && result.deadLettersLeft === 0,
  };
}
