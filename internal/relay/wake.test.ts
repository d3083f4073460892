// When a worker claims (issue 17): a claim is sent whenever an event may be waiting that no
// claim sent since has looked for, and only then. A nudge is never lost, even when it comes
// while every worker is mid-claim or delivering; and a steady trickle of events costs one
// claim per event, not one plus an empty "anything else?" claim after each delivery.
// In memory: the store below stands in for the outbox, and a claim sees exactly the events
// added before it was sent (as a claim statement sees every commit acknowledged before it).
// The poll interval is an hour, so anything delivered here was delivered because of a nudge.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSilentLogger } from '../log/logger.ts';
import type { Claim, OutboxEvent, OutboxStore } from '../outbox/outbox.ts';
import { Relay, type Deliver } from './relay.ts';

const WAIT_MS = 20_000;

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    assert.ok(Date.now() < deadline, `${what} (still not true after ${WAIT_MS} ms, and the poll is an hour away)`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** An outbox in memory. `hold` makes the next claim wait (after taking its snapshot) until opened. */
function memoryStore(batchSize = 10) {
  let nextId = 1;
  const waiting: OutboxEvent[] = [];
  const leased = new Map<string, string>();
  const state = { claims: 0, emptyClaims: 0, deleted: 0, hold: undefined as Promise<void> | undefined, claimSent: undefined as (() => void) | undefined };
  const store: OutboxStore = {
    leaseMs: 3_600_000,
    batchSize,
    async claim() {
      state.claims += 1;
      const token = `t${state.claims}`;
      // The snapshot: what was committed before the claim was sent.
      const events = waiting.splice(0, batchSize);
      for (const e of events) leased.set(e.id, token);
      if (events.length === 0) state.emptyClaims += 1;
      state.claimSent?.();
      const hold = state.hold;
      state.hold = undefined;
      if (hold) await hold;
      return { token, events } satisfies Claim;
    },
    async complete(ids, token) {
      const mine = ids.filter((id) => leased.get(id) === token);
      for (const id of mine) leased.delete(id);
      state.deleted += mine.length;
      return { deleted: mine.length, unblocked: false };
    },
    retryLater: async () => undefined,
    retryUncounted: async () => false,
    deadLetter: async () => false,
    release: async () => 0,
  };
  const add = (): OutboxEvent => {
    const id = String(nextId++);
    const event: OutboxEvent = { id, messageId: `m${id}`, eventType: 'OrderCreated', aggregateId: `a${id}`, payload: {}, sequence: 1, attempts: 1, lastError: null, createdAt: new Date() };
    waiting.push(event);
    return event;
  };
  return { store, state, add };
}

function relayOf(store: OutboxStore, deliver: Deliver, workers: number): Relay {
  return new Relay({ store, deliver, logger: createSilentLogger() }, { workers, pollIntervalMs: 3_600_000 });
}

describe('when a worker claims', () => {
  it('a nudge that arrives while the only worker is mid-claim makes it claim again instead of sleeping', async () => {
    const { store, state, add } = memoryStore();
    const delivered: string[] = [];
    const relay = relayOf(store, async (event) => {
      delivered.push(event.messageId);
      return 'applied';
    }, 1);
    relay.start();
    try {
      await until('the start-up claim was made', () => state.claims === 1);
      // The worker is asleep now. Hold its next claim in flight, after its snapshot was taken…
      const held = gate();
      const sent = gate();
      state.hold = held.opened;
      state.claimSent = sent.open;
      relay.nudge();
      await sent.opened;
      state.claimSent = undefined;
      // …commit an event it cannot see and announce it: nobody is asleep to be woken.
      const late = add();
      relay.nudge();
      held.open();
      await until('the event committed during the claim was delivered', () => delivered.includes(late.messageId));
      assert.equal(state.claims, 3, 'start-up, the claim that missed it, one more');
    } finally {
      await relay.stop();
    }
  });

  it('a nudge that finds every worker delivering is picked up by the first one to finish', async () => {
    const { store, state, add } = memoryStore();
    const held = gate();
    const delivered: string[] = [];
    let first: string | undefined;
    const relay = relayOf(store, async (event) => {
      first ??= event.messageId;
      if (event.messageId === first) await held.opened;
      delivered.push(event.messageId);
      return 'applied';
    }, 1);
    relay.start();
    try {
      await until('the start-up claim was made', () => state.claims === 1);
      add();
      relay.nudge();
      await until('the worker is delivering', () => first !== undefined);
      const second = add();
      relay.nudge(); // nobody asleep
      held.open();
      await until('the event announced while the worker was busy was delivered', () => delivered.includes(second.messageId));
    } finally {
      await relay.stop();
    }
  });

  it('a steady trickle costs one claim per event: no empty claim after each delivery (5 workers)', async () => {
    const { store, state, add } = memoryStore();
    const relay = relayOf(store, async () => 'applied', 5);
    relay.start();
    try {
      await until('every worker made its start-up claim', () => state.claims === 5);
      for (let i = 1; i <= 20; i++) {
        add();
        relay.nudge();
        await until(`event ${i} was delivered and deleted`, () => state.deleted === i);
      }
      // Let any claim still on its way show up before counting.
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(state.claims, 5 + 20, `claims: ${state.claims}, of them empty: ${state.emptyClaims}`);
      assert.equal(state.emptyClaims, 5, 'only the start-up claims found nothing');
    } finally {
      await relay.stop();
    }
  });

  it('nudges that come before the woken worker has sent its claim ride on that claim', async () => {
    const { store, state, add } = memoryStore();
    const relay = relayOf(store, async () => 'applied', 5);
    relay.start();
    try {
      await until('every worker made its start-up claim', () => state.claims === 5);
      for (let i = 0; i < 3; i++) {
        add();
        relay.nudge();
      }
      await until('the three events were delivered and deleted', () => state.deleted === 3);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(state.claims, 5 + 1, 'one claim took the three events (its siblings delivered two of them)');
    } finally {
      await relay.stop();
    }
  });

  it('a full claim is followed by another claim without a nudge: the backlog drains', async () => {
    const { store, state, add } = memoryStore(10);
    const relay = relayOf(store, async () => 'applied', 2);
    relay.start();
    try {
      await until('every worker made its start-up claim', () => state.claims === 2);
      for (let i = 0; i < 95; i++) add();
      relay.nudge(); // once, for 95 events
      await until('all 95 events were delivered and deleted', () => state.deleted === 95);
    } finally {
      await relay.stop();
    }
  });
});
