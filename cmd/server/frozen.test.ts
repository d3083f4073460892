// A relay backend frozen with SIGSTOP (a hung host, a dropped network: the connection stays
// open and nothing ever answers). The client-side query timeout gives the connection up, the
// events are delivered anyway (by another worker once a lease ends, or on a fresh connection),
// and Ctrl-C still stops the server within 15 s while the backend stays frozen.
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase } from '../../internal/testkit/database.ts';
import { startServerProcess } from '../../internal/testkit/process.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(import.meta.filename);
});
after(() => db.drop());

async function postOrder(url: string): Promise<string> {
  const res = await fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ productId: 'gizmo', quantity: 1, userId: 'frozen' }),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { id: string }).id;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Process state letter from /proc ("T" = stopped). */
async function processState(pid: number): Promise<string> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/**
 * SIGSTOPs the relay's idle backends. Only idle ones: a backend frozen inside a transaction
 * would hold its row locks until it is woken, and no timeout on our side can release them.
 * A backend that turned busy just before the signal is woken again at once.
 */
async function freezeIdleRelayBackends(frozen: Set<number>): Promise<number[]> {
  const states = async () =>
    (await db.pool.query<{ pid: number; state: string }>(
      `SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'outbox-demo:relay'`,
    )).rows;
  const idle = (await states()).filter((r) => r.state === 'idle' && !frozen.has(r.pid)).map((r) => r.pid);
  for (const pid of idle) {
    process.kill(pid, 'SIGSTOP');
    frozen.add(pid);
  }
  const after = new Map((await states()).map((r) => [r.pid, r.state]));
  const kept: number[] = [];
  for (const pid of idle) {
    if (after.get(pid) === 'idle') kept.push(pid);
    else {
      process.kill(pid, 'SIGCONT');
      frozen.delete(pid);
    }
  }
  return kept;
}

describe('a relay backend frozen with SIGSTOP', () => {
  it('its events are still delivered, and SIGINT stops the server within 15 s while it stays frozen', async () => {
    // Lease 6 s: the workers' statement timeout is 3 s, the client gives up after 5 s.
    const server = await startServerProcess({ DATABASE_URL: db.url, WORKERS: '2', LEASE_MS: '6000', LOG_LEVEL: 'warn' });
    const frozen = new Set<number>();
    try {
      const first = await postOrder(server.url);
      await eventually('the first order settles', async () =>
        (await db.pool.query(`SELECT 1 FROM orders WHERE id = $1 AND status = 'CONFIRMED'`, [first])).rowCount === 1);

      const pids = await freezeIdleRelayBackends(frozen);
      assert.ok(pids.length > 0, 'a relay backend was frozen');
      const ids: string[] = [];
      for (let i = 0; i < 10; i += 1) ids.push(await postOrder(server.url));
      await eventually('every order confirmed and the outbox empty, with the backend still frozen', async () => {
        const { rows } = await db.pool.query<{ confirmed: number; outbox: number }>(
          `SELECT (SELECT count(*)::int FROM orders WHERE id = ANY($1::uuid[]) AND status = 'CONFIRMED') AS confirmed,
                  (SELECT count(*)::int FROM outbox) AS outbox`,
          [ids],
        );
        return rows[0]!.confirmed === ids.length && rows[0]!.outbox === 0;
      });
      for (const pid of pids) assert.equal(await processState(pid), 'T', `backend ${pid} is still frozen`);
      const { rows } = await db.pool.query<{ taken: number; applied: number }>(
        `SELECT (SELECT 100000 - stock FROM products WHERE id = 'gizmo') AS taken,
                (SELECT count(*)::int FROM processed_messages WHERE payload->>'userId' = 'frozen') AS applied`,
      );
      assert.deepEqual(rows[0], { taken: 11, applied: 11 }, 'each order applied exactly once');

      // Now stop the server while a worker waits on a frozen connection.
      await freezeIdleRelayBackends(frozen);
      await postOrder(server.url);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const started = Date.now();
      const code = await server.run.stop('SIGINT');
      const took = Date.now() - started;
      assert.ok(took < 15_000, `stopped after ${took} ms`);
      assert.equal(code, 0, server.run.output());
    } finally {
      for (const pid of frozen) {
        try {
          process.kill(pid, 'SIGCONT');
        } catch {
          // already gone
        }
      }
      if (server.run.child.exitCode === null) await server.run.stop('SIGKILL');
    }
  });
});
