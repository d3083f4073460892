// The inventory service's start-up failures as a user meets them (and the broker ones the order
// service shares, through the same openBroker): one clear line, no stack, the right exit code.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
import { skipUnlessNats, startTestNatsServer } from '../../internal/testkit/nats.ts';
import { freePort } from '../../internal/testkit/ports.ts';
import { runScript } from '../../internal/testkit/process.ts';

const STACK_LINE = /^\s+at /m;
let db: TestDatabase;

before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

function inventory(env: Record<string, string | undefined>) {
  return runScript('cmd/inventory/main.ts', [], { TRANSPORT: 'nats', INVENTORY_DATABASE_URL: db.url, INVENTORY_PORT: '0', ...env });
}

describe('npm run inventory', () => {
  it('without TRANSPORT=nats: one line, exit 2', async () => {
    const run = inventory({ TRANSPORT: undefined });
    assert.equal(await run.exited, 2, run.output());
    assert.match(run.output(), /runs only with TRANSPORT=nats/);
    assert.doesNotMatch(run.output(), STACK_LINE);
  });

  it('NATS_REPLICAS=3 without a cluster to put them on: one line, exit 2, nothing started', async () => {
    const run = inventory({ NATS_REPLICAS: '3', NATS_URL: undefined });
    assert.equal(await run.exited, 2, run.output());
    assert.match(run.output(), /NATS_REPLICAS=3 needs a cluster: set NATS_URL/);
    assert.equal(run.output().trim().split('\n').length, 1, run.output());
  });

  it('a NATS_URL where nothing answers: says so after NATS_CONNECT_TIMEOUT, one line, exit 1', async () => {
    const port = await freePort();
    const run = inventory({ NATS_URL: `nats://someone:secret@127.0.0.1:${port}`, NATS_CONNECT_TIMEOUT: '2s' });
    assert.equal(await run.exited, 1, run.output());
    assert.match(run.output(), new RegExp(`could not start: cannot reach NATS at nats://\\*\\*\\*@127.0.0.1:${port} .*Check NATS_URL`));
    assert.doesNotMatch(run.output(), /secret/, 'credentials are never printed');
    assert.doesNotMatch(run.output(), STACK_LINE);
  });

  it('a NATS_URL server without JetStream: one line naming the cause, exit 1', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const plain = await startTestNatsServer({ jetstream: false });
    try {
      const run = inventory({ NATS_URL: plain.url });
      assert.equal(await run.exited, 1, run.output());
      assert.match(run.output(), /runs without JetStream \(start it with -js\)/);
      assert.doesNotMatch(run.output(), STACK_LINE);
    } finally {
      await plain.stop();
    }
  });
});
