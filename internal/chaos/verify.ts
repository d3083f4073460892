// The end-of-run audit: what the client was told versus what the database holds (in NATS
// mode, the two databases: orders in the order service's, stock and its inbox in the inventory's).
import type { Queryable } from '../db/pool.ts';
import { countConsumed, countInboxByOrder, countOrdersAppliedTwice } from '../inventory/processed.ts';
import { listProducts, SEED_STOCK } from '../inventory/stock.ts';
import { confirmedQuantityByProduct, countOrdersByStatus, getOrders } from '../orders/orders.ts';
import { countDeadLetters, listDeadLetters } from '../outbox/dead-letters.ts';
import { countOutbox, ORDER_CREATED } from '../outbox/outbox.ts';

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

/** The audit of a TRANSPORT=nats run: each side's tables read from its own database. */
export interface NatsAudit extends Audit {
  /** Accepted orders whose OrderCreated is not in the inventory's inbox exactly once (or inbox entries for no accepted order). */
  inboxMismatches: number;
  /** Orders settled by more than one reply (the order service's inbox): must be 0. */
  repliesAppliedTwice: number;
  /** Replies the order service's inbox recognised and skipped. */
  replyDuplicatesSkipped: number;
  /** Replies still in the inventory's outbox. */
  inventoryOutboxLeft: number;
  /** What each dead letter left is and why it died ("inventory: OrderCreated 1a2b…: delivered 5 times…"). */
  deadLetters: string[];
  /** Up to 10 accepted orders still PENDING, and how far each got ("1a2b…: in the inventory inbox 1×"), to tell where one stopped. */
  pendingOrders: string[];
}

/**
 * `acceptedIds`: every order id the client received a 201 for. Orders, their status and the
 * order outbox come from the order database; stock, the OrderCreated inbox and the reply
 * outbox from the inventory's. Assumes both were fresh.
 */
export async function auditNats(orderDb: Queryable, inventoryDb: Queryable, acceptedIds: readonly string[]): Promise<NatsAudit> {
  const found = [];
  for (let i = 0; i < acceptedIds.length; i += 1000) found.push(...(await getOrders(orderDb, acceptedIds.slice(i, i + 1000))));
  const settled = found.filter((o) => o.status !== 'PENDING');
  const confirmed = settled.filter((o) => o.status === 'CONFIRMED').length;

  // What the order service was told it may take, against what the inventory took.
  const taken = await confirmedQuantityByProduct(orderDb);
  const stockMismatches = (await listProducts(inventoryDb))
    .filter((p) => SEED_STOCK - p.stock !== (taken[p.id] ?? 0))
    .map((p) => `${p.id}: stock fell by ${SEED_STOCK - p.stock} in the inventory database, confirmed orders took ${taken[p.id] ?? 0}`);
  const inbox = await countInboxByOrder(inventoryDb, ORDER_CREATED);
  const accepted = new Set(acceptedIds);
  const inboxMismatches =
    [...accepted].filter((id) => inbox.get(id) !== 1).length + [...inbox.keys()].filter((id) => !accepted.has(id)).length;
  const [outbox, inventoryOutbox, inDatabase] = await Promise.all([countOutbox(orderDb), countOutbox(inventoryDb), countOrdersByStatus(orderDb)]);
  const [inventoryCounts, replyCounts] = await Promise.all([countConsumed(inventoryDb), countConsumed(orderDb)]);
  const result = {
    accepted: acceptedIds.length,
    confirmed,
    rejected: settled.length - confirmed,
    lost: acceptedIds.length - settled.length,
    extraOrders: inDatabase.PENDING + inDatabase.CONFIRMED + inDatabase.REJECTED - accepted.size,
    appliedTwice: await countOrdersAppliedTwice(inventoryDb),
    stockMismatches,
    duplicatesSkipped: inventoryCounts.duplicatesSkipped,
    deadLettersLeft: (await countDeadLetters(orderDb)) + (await countDeadLetters(inventoryDb)),
    outboxLeft: outbox.pending,
    inboxMismatches,
    repliesAppliedTwice: await countOrdersAppliedTwice(orderDb),
    replyDuplicatesSkipped: replyCounts.duplicatesSkipped,
    inventoryOutboxLeft: inventoryOutbox.pending,
    pendingOrders: found
      .filter((o) => o.status === 'PENDING')
      .slice(0, 10)
      .map((o) => `${o.id.slice(0, 8)}…: in the inventory inbox ${inbox.get(o.id) ?? 0}×`),
    deadLetters: [
      ...(await listDeadLetters(orderDb)).map((d) => `order service: ${d.eventType} ${d.messageId.slice(0, 8)}… after ${d.attempts}: ${d.lastError}`),
      ...(await listDeadLetters(inventoryDb)).map((d) => `inventory: ${d.eventType} ${d.messageId.slice(0, 8)}… after ${d.attempts}: ${d.lastError}`),
    ],
  };
  return {
    ...result,
    ok:
      result.lost === 0 && result.extraOrders === 0 && accepted.size === acceptedIds.length && result.appliedTwice === 0 &&
      result.repliesAppliedTwice === 0 && inboxMismatches === 0 && stockMismatches.length === 0 && result.outboxLeft === 0 &&
      result.inventoryOutboxLeft === 0 && result.deadLettersLeft === 0,
  };
}
