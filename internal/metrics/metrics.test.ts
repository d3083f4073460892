// GET /metrics after a real run: valid Prometheus text; counters count what this process did
// (monotonic, bounded labels) and the database's numbers are gauges equal to /stats.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningServer } from '../app/wiring.ts';
import { createApiClient } from '../client/api-client.ts';
import { resetDemoData } from '../app/reset.ts';
import type { Stats } from '../stats/stats.ts';
import { runStressTest } from '../stress/stress.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { startTestServer } from '../testkit/server.ts';
import { parsePrometheusText, sampleValue, type Family } from '../testkit/prometheus.ts';

let db: TestDatabase;
let server: RunningServer;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  server = await startTestServer(db);
});
after(async () => {
  await server.close();
  await db.drop();
});

async function scrape(): Promise<Map<string, Family>> {
  const res = await fetch(`${server.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

describe('GET /metrics', () => {
  it('after 30 orders and 4 duplicates: parses as Prometheus text and agrees with /stats', async () => {
    const run = await runStressTest(
      { orders: 30, concurrency: 30, quantity: 2, productIds: [], wait: true, waitTimeoutMs: 30_000, userId: 'metrics' },
      { client: createApiClient(server.url) },
    );
    assert.ok(run.ok, run.invariant.problems.join('; '));
    const replay = await fetch(`${server.url}/dashboard/replay`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ count: 4 }),
    });
    assert.equal((await replay.json()).skipped, 4);

    await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the readers' cache
    const metrics = await scrape();
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as Stats; // the same read

    const types = Object.fromEntries([...metrics].map(([name, family]) => [name, family.type]));
    assert.deepEqual(
      {
        pending: types.outbox_pending_events,
        delivered: types.outbox_events_delivered_total,
        failures: types.outbox_delivery_failures_total,
        duplicates: types.inventory_duplicates_skipped_total,
        claims: types.outbox_claim_batch_size,
        latency: types.outbox_delivery_duration_seconds,
        http: types.http_requests_total,
      },
      { pending: 'gauge', delivered: 'counter', failures: 'counter', duplicates: 'counter', claims: 'histogram', latency: 'histogram', http: 'counter' },
    );
    for (const family of metrics.values()) assert.ok(family.help.length > 0, 'every metric explains itself');

    // The database's numbers are gauges, equal to /stats.
    assert.equal(sampleValue(metrics, 'outbox_pending_events'), stats.outbox.pending);
    assert.equal(stats.outbox.pending, 0);
    assert.equal(sampleValue(metrics, 'pipeline_duplicates_skipped'), stats.duplicatesSkipped);
    assert.equal(stats.duplicatesSkipped, 4);
    assert.equal(sampleValue(metrics, 'pipeline_messages_processed', { outcome: 'applied' }), stats.processed.applied);
    assert.equal(sampleValue(metrics, 'outbox_parked_events'), stats.outbox.parked);
    assert.equal(stats.outbox.parked, 0);
    for (const status of ['PENDING', 'CONFIRMED', 'REJECTED', 'CANCELLED'] as const) {
      assert.equal(sampleValue(metrics, 'orders', { status }), stats.orders[status]);
    }
    for (const product of stats.products) assert.equal(sampleValue(metrics, 'product_stock', { product: product.id }), product.stock);
    assert.equal(sampleValue(metrics, 'outbox_dead_letters_waiting'), stats.deadLetters);
    for (const name of ['outbox_oldest_event_age_seconds', 'postgres_oldest_transaction_age_seconds', 'postgres_xmin_horizon_age_xids',
      'outbox_dead_tuples', 'outbox_dead_letter_oldest_age_seconds', 'orders_oldest_pending_age_seconds']) {
      assert.equal(types[name], 'gauge', name);
    }
    assert.equal(sampleValue(metrics, 'outbox_oldest_event_age_seconds'), 0, 'the outbox is empty');

    // What this process did: every delivery (30 orders + 4 duplicates), by its own workers, is
    // what the database saw too, since this server is the only one.
    const deliveredByWorker = Object.fromEntries(
      metrics.get('outbox_events_delivered_total')!.samples.map((s) => [s.labels.worker, s.value]),
    );
    assert.deepEqual(deliveredByWorker, stats.deliveriesByWorker);
    assert.equal(Object.values(stats.deliveriesByWorker).reduce((a, b) => a + b, 0), 34);
    assert.equal(sampleValue(metrics, 'inventory_duplicates_skipped_total'), 4);
    assert.equal(sampleValue(metrics, 'inventory_messages_processed_total', { outcome: 'applied' }), stats.processed.applied);

    // What this process observed: every delivery once (30 orders + 4 duplicates), no failures.
    assert.equal(sampleValue(metrics, 'outbox_claim_batch_size_sum'), 34, 'each event claimed once');
    assert.ok(sampleValue(metrics, 'outbox_claim_batch_size_count')! >= 1);
    assert.equal(sampleValue(metrics, 'outbox_delivery_duration_seconds_count'), 34);
    assert.equal(sampleValue(metrics, 'outbox_delivery_duration_seconds_bucket', { le: '+Inf' }), 34);
    assert.equal(metrics.get('outbox_delivery_failures_total')!.samples.length, 0);
    assert.equal(sampleValue(metrics, 'http_requests_total', { method: 'POST', route: '/orders', status: '201' }), 30);
    assert.equal(sampleValue(metrics, 'http_requests_total', { method: 'POST', route: '/dashboard/replay', status: '200' }), 1);
  });

  it('counters only go up: the demo reset lowers the database totals (gauges), never a counter', async () => {
    const before = await scrape();
    const delivered = sumOf(before, 'outbox_events_delivered_total');
    assert.ok(delivered > 0);
    await resetDemoData(db.pool);
    const after = await scrape(); // the cache is at most 1 s old
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const later = await scrape();
    assert.equal(sumOf(after, 'outbox_events_delivered_total'), delivered);
    assert.equal(sampleValue(later, 'inventory_duplicates_skipped_total'), sampleValue(before, 'inventory_duplicates_skipped_total'));
    assert.equal(sampleValue(later, 'pipeline_duplicates_skipped'), 0, 'the database total is a gauge: it went back to 0');
  });

  it('past worker names in the history add no series', async () => {
    // 500 relays that ran once, each under a different name (the old default had the pid in it).
    await db.pool.query(
      `INSERT INTO processed_messages (message_id, outcome, handled_by)
       SELECT gen_random_uuid(), 'applied', 'relay-host-' || n || '/Worker-1' FROM generate_series(1, 500) n`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const metrics = await scrape();
    const workers = new Set(metrics.get('outbox_events_delivered_total')!.samples.map((s) => s.labels.worker));
    assert.ok(workers.size <= 5, `series per worker of this process only, got ${[...workers].join(', ')}`);
    let series = 0;
    for (const family of metrics.values()) series += family.samples.length;
    assert.ok(series < 200, `${series} series`);
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as Stats;
    assert.ok(Object.keys(stats.deliveriesByWorker).length >= 500, '/stats still shows the whole history per worker');
  });

  it('labels requests by route pattern, never by raw path', async () => {
    await fetch(`${server.url}/orders/00000000-0000-4000-8000-000000000000`);
    await fetch(`${server.url}/no/such/thing`);
    const metrics = await scrape();
    assert.equal(sampleValue(metrics, 'http_requests_total', { method: 'GET', route: '/orders/:id', status: '404' }), 1);
    assert.equal(sampleValue(metrics, 'http_requests_total', { method: 'GET', route: 'unmatched', status: '404' }), 1);
    const routes = new Set(metrics.get('http_requests_total')!.samples.map((s) => s.labels.route));
    assert.ok(![...routes].some((r) => r?.includes('00000000')));
  });

  it('the parser refuses what Prometheus would refuse', () => {
    assert.throws(() => parsePrometheusText('no_type_declared 1\n'), /undeclared/);
    assert.throws(() => parsePrometheusText('# TYPE x counter\nx{a="1" 1\n'), /bad labels|not a sample/);
    assert.throws(() => parsePrometheusText('# TYPE x gauge\nx one\n'), /not a number/);
  });
});

function sumOf(metrics: Map<string, Family>, name: string): number {
  return (metrics.get(name)?.samples ?? []).reduce((sum, s) => sum + s.value, 0);
}
