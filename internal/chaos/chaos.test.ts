// One short chaos run inside `npm test`: the real server SIGKILLed three times and PostgreSQL
// restarted once under load, with failing deliveries; the audit must come out clean.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chaosRun } from '../app/chaos.ts';
import { loadConfig } from '../config/config.ts';
import { createSilentLogger } from '../log/logger.ts';

describe('a short chaos run', () => {
  it('300 orders, 3 kills, 1 PostgreSQL restart, 10% failing deliveries: nothing lost, nothing applied twice', async () => {
    const result = await chaosRun(
      loadConfig({}, { databaseUrl: undefined }),
      { orders: 300, concurrency: 10, kills: 3, dbRestarts: 1, failRate: 0.1, seed: 20261123, leaseMs: 1000, settleTimeoutMs: 180_000 },
      createSilentLogger(),
    );
    assert.equal(result.killsDone, 3);
    assert.equal(result.dbRestartsDone, 1);
    assert.equal(result.audit.accepted, 300);
    assert.equal(result.audit.lost, 0);
    assert.equal(result.audit.extraOrders, 0);
    assert.equal(result.serverErrors, 0);
    assert.equal(result.audit.appliedTwice, 0);
    assert.deepEqual(result.audit.stockMismatches, []);
    assert.equal(result.audit.outboxLeft, 0);
    assert.ok(result.clientRetries > 0, 'requests met the disruptions and were retried');
    assert.ok(result.ok);
  });
});
