// One short chaos run over NATS inside `npm test`: the order service and the inventory
// service as real child processes, each SIGKILLed twice, and the real nats-server restarted
// once, while orders flow; the audit of both databases must come out clean.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chaosRun } from '../app/chaos.ts';
import { loadConfig } from '../config/config.ts';
import { createSilentLogger } from '../log/logger.ts';
import { skipUnlessNats } from '../testkit/nats.ts';

describe('a short chaos run over NATS', () => {
  it('300 orders, 2 order-service kills, 2 inventory kills, 1 nats-server restart: nothing lost, nothing applied twice', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const result = await chaosRun(
      loadConfig({}, { databaseUrl: undefined }),
      {
        transport: 'nats', orders: 300, concurrency: 10, kills: 2, inventoryKills: 2, brokerRestarts: 1, dbRestarts: 0,
        failRate: 0, seed: 20261124, leaseMs: 1000, settleTimeoutMs: 180_000,
      },
      createSilentLogger(),
    );
    assert.equal(result.killsDone, 2);
    assert.equal(result.nats?.inventoryKillsDone, 2);
    assert.equal(result.nats?.brokerRestartsDone, 1);
    const a = result.nats!.audit;
    assert.equal(a.accepted, 300);
    // On failure, say where the orders stopped: a next run can then tell a lost publish, a
    // stuck consumer or a lost reply apart.
    assert.equal(a.lost, 0, `every accepted order settled in the order database; PENDING: ${a.pendingOrders.join(', ')}; dead letters: ${a.deadLetters.join(' | ') || 'none'}; inbox mismatches ${a.inboxMismatches}`);
    assert.equal(a.extraOrders, 0);
    assert.equal(result.serverErrors, 0);
    assert.equal(a.appliedTwice, 0, "the inventory's inbox applied each OrderCreated once");
    assert.equal(a.inboxMismatches, 0, "each accepted order's OrderCreated is in the inventory's inbox exactly once");
    assert.equal(a.repliesAppliedTwice, 0);
    assert.deepEqual(a.stockMismatches, [], 'stock in the inventory database fell by exactly the confirmed quantities');
    assert.equal(a.outboxLeft, 0);
    assert.equal(a.inventoryOutboxLeft, 0);
    assert.deepEqual(a.deadLetters, []);
    assert.equal(a.deadLettersLeft, 0);
    assert.equal(a.rejected, 0);
    assert.ok(result.clientRetries > 0, 'requests met the kills and were retried');
    assert.ok(result.ok);
  });
});
