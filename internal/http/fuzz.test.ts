// Property: whatever arrives at POST /orders is either a valid order (201, one order and one
// event written) or a 4xx JSON error with nothing written. Never a 5xx, never a half write.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isAppError } from '../errors/errors.ts';
import { createSilentLogger } from '../log/logger.ts';
import { MAX_QUANTITY, validateOrderInput } from '../orders/validate.ts';
import { createTestDatabase, type TestDatabase } from '../testkit/database.ts';
import { createHttpApp } from './app.ts';

let db: TestDatabase;
let server: Server;
let base: string;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
  server = await new Promise<Server>((resolve) => {
    const s = createHttpApp({ pool: db.pool, logger: createSilentLogger() }).listen(0, '127.0.0.1', () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await db.drop();
});

// Bodies that are mostly almost-right, where validators break, plus anything at all.
const productId = fc.oneof(fc.constantFrom('widget', 'gadget', 'nope', '', ' widget'), fc.string(), fc.integer(), fc.constant(null));
const quantity = fc.oneof(
  fc.integer({ min: -5, max: MAX_QUANTITY + 5 }),
  fc.double(),
  fc.constantFrom('1', '', null, true, [], {}, 1e300, -0),
);
const userId = fc.oneof(fc.constant(undefined), fc.string({ maxLength: 80 }), fc.integer(), fc.constant(null));
const orderish = fc.record(
  { productId, quantity, userId, extra: fc.anything() },
  { requiredKeys: [] },
);
const body = fc.oneof(orderish, fc.anything(), fc.json().map((text) => ({ raw: text })));

describe('the validator', () => {
  it('returns a clean order or throws VALIDATION_FAILED, for any value', () => {
    fc.assert(
      fc.property(fc.oneof(orderish, fc.anything()), (value) => {
        try {
          const input = validateOrderInput(value);
          assert.equal(typeof input.productId, 'string');
          assert.ok(Number.isInteger(input.quantity) && input.quantity >= 1 && input.quantity <= MAX_QUANTITY);
          assert.ok(input.userId === undefined || typeof input.userId === 'string');
        } catch (error) {
          assert.ok(isAppError(error, 'VALIDATION_FAILED'), String(error));
        }
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('POST /orders', () => {
  it('answers 201 with exactly one order and one event written, or 4xx with nothing written', async () => {
    await fc.assert(
      fc.asyncProperty(body, async (value) => {
        const text = typeof value === 'object' && value !== null && 'raw' in value ? String(value.raw) : safeStringify(value);
        const before = await counts();
        const res = await fetch(`${base}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
        const json = await res.json();
        const after = await counts();
        if (res.status === 201) {
          assert.deepEqual(after, { orders: before.orders + 1, events: before.events + 1 });
        } else {
          assert.ok(res.status >= 400 && res.status < 500, `status ${res.status} for ${text}`);
          assert.equal(typeof json.error.code, 'string');
          assert.deepEqual(after, before);
        }
      }),
      { numRuns: 300 },
    );
  });
});

async function counts() {
  const { rows } = await db.pool.query(
    `SELECT (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM outbox) AS events`,
  );
  return rows[0] as { orders: number; events: number };
}

/** JSON for anything fast-check makes (undefined, bigint… become something sendable). */
function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
  } catch {
    return '{"unserializable": true}';
  }
}
