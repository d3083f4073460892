// Dead letters a service RECEIVED from a broker keep the message's position within its
// aggregate, so a re-drive sends an OrderCancelled back as event 2 (without it, the consumer
// could not order it after its OrderCreated and would refuse it as poison).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { listReceivedDeadLetters, recordReceivedDeadLetter } from './dead-letters.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

describe('received dead letters', () => {
  it('keep the position they arrived with (absent: 1), and give it back for the re-drive', async () => {
    const orderId = randomUUID();
    const cancel = randomUUID();
    const create = randomUUID();
    await recordReceivedDeadLetter(db.pool, { stream: 'ORDERS', messageId: cancel, eventType: 'OrderCancelled', aggregateId: orderId, payload: { orderId }, sequence: 2, deliveries: 5 }, 'boom');
    await recordReceivedDeadLetter(db.pool, { stream: 'ORDERS', messageId: create, eventType: 'OrderCreated', aggregateId: orderId, payload: { orderId }, deliveries: 5 }, 'boom');
    const { rows } = await db.pool.query(`SELECT message_id, aggregate_seq FROM dead_letters ORDER BY aggregate_seq`);
    assert.deepEqual(rows, [{ message_id: create, aggregate_seq: 1 }, { message_id: cancel, aggregate_seq: 2 }]);
    const copies = await listReceivedDeadLetters(db.pool, 'ORDERS');
    assert.deepEqual(copies.map((c) => [c.eventType, c.sequence]), [['OrderCancelled', 2], ['OrderCreated', 1]]);
  });
});
