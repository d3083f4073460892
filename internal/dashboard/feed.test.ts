// The live feed: every log step reaches it (whatever the console's level), tagged by kind.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemoryLogger, createSilentLogger, speakerColorName, teeLogger, type LogRecord } from '../log/logger.ts';
import { classify, createLiveFeed } from './feed.ts';

describe('teeLogger', () => {
  it('hands every record to the listener, with the child\'s speaker, and still logs as before', () => {
    const heard: LogRecord[] = [];
    const console = createMemoryLogger('warn');
    const logger = teeLogger(console, (record) => heard.push(record));
    const worker = logger.child('Worker-2');
    worker.info('claimed 3 events');
    worker.warn('delivery failed');
    logger.child('API').error('boom', new Error('cause'));
    assert.deepEqual(heard, [
      { level: 'info', speaker: 'Worker-2', message: 'claimed 3 events' },
      { level: 'warn', speaker: 'Worker-2', message: 'delivery failed' },
      { level: 'error', speaker: 'API', message: 'boom' },
    ]);
    // The console logger keeps its own threshold: the info line is not printed there.
    assert.deepEqual(console.records.map((r) => r.message), ['delivery failed', 'boom']);
  });

  it('feeds the dashboard even when the console is silent', () => {
    const feed = createLiveFeed();
    teeLogger(createSilentLogger(), (r) => feed.record(r)).child('API').info('order 1234… accepted: 1 × widget');
    assert.equal(feed.lastSeq, 1);
    assert.equal(feed.since(0, 10)[0]!.kind, 'accepted');
  });
});

describe('the live feed', () => {
  it('tags the steps the components log', () => {
    const cases: Array<[LogRecord, string]> = [
      [{ level: 'info', speaker: 'API', message: 'order 436d2c59… accepted: 3 × widget (order + OrderCreated event in one transaction)' }, 'accepted'],
      [{ level: 'info', speaker: 'API', message: 'order 436d2c59… cancelled (order + OrderCancelled event #2 in one transaction) (trace 0af76519)' }, 'cancelled'],
      [{ level: 'info', speaker: 'API', message: 'order 436d2c59… was already cancelled (nothing written)' }, 'info'],
      [{ level: 'info', speaker: 'Worker-1', message: 'claimed 1 event' }, 'claimed'],
      [{ level: 'info', speaker: 'Worker-3', message: 'claimed 10 events' }, 'claimed'],
      [{ level: 'info', speaker: 'Inventory', message: 'order 436d2c59… stock widget 100000 → 99997 (CONFIRMED)' }, 'applied'],
      [{ level: 'info', speaker: 'Inventory', message: 'order 436d2c59… REJECTED: insufficient stock for widget: wanted 3, have 1' }, 'rejected'],
      [{ level: 'info', speaker: 'Inventory', message: 'SKIPPING duplicate message cee2ece6 (order 4c3f22ff…, delivered by Worker-3)' }, 'duplicate'],
      [{ level: 'info', speaker: 'Worker-1', message: 'delivered and deleted 1 event (1 applied)' }, 'delivered'],
      [{ level: 'warn', speaker: 'Worker-2', message: 'delivery failed for abc (attempt 1): boom; retry in 1.2 s' }, 'retried'],
      [{ level: 'warn', speaker: 'Worker-2', message: 'gave up on abc after 5 attempts: moved to dead letters' }, 'dead-lettered'],
      [{ level: 'warn', speaker: 'Worker-2', message: 'cannot reach the outbox (timeout); retrying in 200 ms' }, 'warning'],
      [{ level: 'error', speaker: 'API', message: 'GET /x → 500 INTERNAL' }, 'error'],
      [{ level: 'info', speaker: 'DB', message: 'applied migration 0001_init' }, 'info'],
    ];
    for (const [record, kind] of cases) assert.equal(classify(record), kind, record.message);
  });

  it('tags the same steps when their lines end with a trace id', () => {
    const cases: Array<[LogRecord, string]> = [
      [{ level: 'info', speaker: 'Worker-1', message: 'claimed 1 event (trace 4bf92f35)' }, 'claimed'],
      [{ level: 'info', speaker: 'Worker-3', message: 'claimed 2 events (traces 4bf92f35 eb21382c)' }, 'claimed'],
      [{ level: 'info', speaker: 'Inventory', message: 'order 436d2c59… stock widget 100000 → 99997 (CONFIRMED) (trace 4bf92f35)' }, 'applied'],
    ];
    for (const [record, kind] of cases) assert.equal(classify(record), kind, record.message);
  });

  it('keeps the newest steps, numbered, with the terminal\'s speaker colors; debug stays out', () => {
    const feed = createLiveFeed(3);
    for (let i = 1; i <= 5; i += 1) feed.record({ level: 'info', speaker: 'Worker-1', message: `step ${i}` });
    feed.record({ level: 'debug', speaker: 'Worker-1', message: 'noise' });
    assert.equal(feed.lastSeq, 5);
    assert.deepEqual(feed.since(0, 10).map((s) => s.seq), [3, 4, 5]);
    assert.deepEqual(feed.since(3, 10).map((s) => s.message), ['step 4', 'step 5']);
    assert.deepEqual(feed.since(0, 1).map((s) => s.seq), [5], 'the newest win when limited');
    const step = feed.since(4, 1)[0]!;
    assert.equal(step.color, speakerColorName('Worker-1'));
    assert.match(step.time, /^\d\d:\d\d:\d\d\.\d{3}$/);
  });
});
