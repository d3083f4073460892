// `npm run bench` end to end at toy sizes: every part runs and reports, and it cleans up after
// itself. Whether the numbers meet their targets is the benchmark's business, not the tests'.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { testAdminDatabaseUrl } from '../../internal/config/config.ts';
import { natsAvailable } from '../../internal/testkit/nats.ts';
import { runScript } from '../../internal/testkit/process.ts';

describe('npm run bench', () => {
  it('measures every part at toy sizes and prints one JSON result, leaving no database behind', async () => {
    const adminUrl = testAdminDatabaseUrl();
    const bench = runScript(
      'cmd/bench/main.ts',
      ['--events', '300', '--rounds', '1', '--latency-seconds', '1', '--latency-warmup-seconds', '1', '--rate', '50', '--high-rate', '80', '--api-orders', '200', '--api-runs', '2', '--explain-rows', '2000',
        '--snapshot-events', '300', '--reader-rows', '2000', '--reader-orders', '100', '--readers', '10', '--nats-events', '200', '--ordering-events', '300', '--json'],
      // A retention shorter than the retry path makes the server child warn at start-up: its log
      // lines must go to stderr, never into the JSON on stdout.
      { DATABASE_URL: adminUrl, INBOX_RETENTION: '1s', REPLAY_COPY_RETENTION: '1s' },
    );
    const code = await bench.exited;
    assert.ok(code === 0 || code === 1, `exit ${code} means the benchmark itself failed:\n${bench.output()}`);
    const result = JSON.parse(bench.stdout());

    assert.deepEqual(result.throughput.map((t: { mode: string }) => t.mode), ['per-message', 'batch']);
    for (const t of result.throughput) assert.ok(t.relayPerSecond > 0 && t.ceilingPerSecond > 0, JSON.stringify(t));
    assert.deepEqual(
      result.latency.map((l: { wakeup: string; consumerMode: string; rate: number }) => `${l.wakeup} ${l.consumerMode} ${l.rate}`),
      ['notify per-message 50', 'notify batch 50', 'notify per-message 80', 'notify batch 80', 'notify-in-transaction per-message 50', 'poll per-message 50'],
    );
    for (const l of result.latency) assert.equal(l.missing, 0, 'every order placed was seen consumed');
    // The warm-up's orders are measured apart (the cold start), never mixed into the percentiles.
    for (const l of result.latency) assert.deepEqual([l.count, l.coldStart.count], [l.rate, l.rate], `${l.wakeup} ${l.consumerMode} ${l.rate}`);
    assert.equal(result.api.runs.length, 2);
    assert.ok(result.api.runs.every((r: { failed: number }) => r.failed === 0));
    for (const mode of ['no-notify', 'in-transaction', 'after-commit']) assert.ok(result.orderWrite.perSecond[mode] > 0, mode);
    assert.match(result.claimPlan.plan, /Index Scan using outbox_available_idx/);
    assert.deepEqual(result.aggregateOrder.runs.map((r: { eventsPerAggregate: number }) => r.eventsPerAggregate), [1, 2, 5]);
    for (const run of result.aggregateOrder.runs) assert.ok(run.perSecond > 0, JSON.stringify(run));
    const snapshot = result.oldSnapshot;
    assert.deepEqual(snapshot.runs.map((r: { held: boolean }) => r.held), [false, true]);
    for (const side of [snapshot.without, snapshot.held]) {
      assert.ok(side.eventsPerSecond > 0 && side.claimBuffers > 0 && side.consumerMs > 0, JSON.stringify(snapshot));
    }
    const readers = result.statsReaders;
    assert.deepEqual(readers.runs.map((r: { readers: number }) => r.readers), [0, 10]);
    assert.equal(readers.alone.count + readers.withReaders.count, 200);
    assert.equal(readers.alone.non201 + readers.withReaders.non201, 0, 'every order accepted');
    assert.ok(readers.withReaders.readsPerSecond > 0 && readers.withReaders.readFailures === 0, JSON.stringify(readers.withReaders));
    if (await natsAvailable()) {
      const transports = result.transports;
      assert.deepEqual(transports.sides.map((s: { mode: string }) => s.mode), ['in-process', 'nats']);
      for (const side of transports.sides) {
        assert.ok(side.drainPerSecond > 0, JSON.stringify(side));
        assert.equal(side.latency.missing, 0, `${side.mode}: every order placed settled`);
        assert.equal(side.latency.count, 50, `${side.mode}: 50 orders/s for 1 s`);
      }
    } else {
      assert.equal(result.transports, undefined, 'without nats-server the part is skipped, not failed');
    }
    assert.equal(result.ok, result.targets.every((t: { met: boolean }) => t.met));
    assert.equal(code, result.ok ? 0 : 1);

    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      const { rows } = await client.query(`SELECT datname FROM pg_database WHERE datname LIKE 'outbox_bench%'`);
      assert.deepEqual(rows, [], 'the benchmark dropped its databases');
    } finally {
      await client.end();
    }
  });
});
