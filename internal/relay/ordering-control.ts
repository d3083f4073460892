// Test control only, never used by the product: the claim as it was before events of one
// aggregate had to go in order (no "earlier event still waiting?" probes). Kept so the tests
// can show what the rule prevents, like the naive claim in claim.test.ts.
import type { Queryable } from '../db/pool.ts';
import { claimEvents, claimSql, createOutboxStore, type Claim, type OutboxStore, type OutboxStoreOptions } from '../outbox/outbox.ts';

const UNORDERED = claimSql(false);

/** Leases the oldest available events whatever waits before them in their aggregate. */
export function claimIgnoringOrder(db: Queryable, options: { workerName: string; batchSize: number; leaseMs: number }): Promise<Claim> {
  return claimEvents(db, options, UNORDERED);
}

/** An OutboxStore whose claim is claimIgnoringOrder; everything else as the product's. */
export function storeIgnoringOrder(db: Queryable, options: OutboxStoreOptions): OutboxStore {
  return {
    ...createOutboxStore(db, options),
    claim: (workerName) => claimIgnoringOrder(db, { workerName, batchSize: options.batchSize, leaseMs: options.leaseMs }),
  };
}
