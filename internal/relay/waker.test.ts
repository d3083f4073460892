// A wake-up wakes one sleeper and tells it why; waking nobody is reported, not stored.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Waker, type WakeReason } from './waker.ts';

const settled = async (p: Promise<WakeReason>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe('Waker', () => {
  it('wakeOne wakes exactly one of several sleepers, with its reason; wake wakes them all', async () => {
    const waker = new Waker();
    const sleepers = [waker.sleep(60_000), waker.sleep(60_000), waker.sleep(60_000)];
    assert.equal(waker.wakeOne('claim'), true);
    const awake = await Promise.all(sleepers.map(settled));
    assert.equal(awake.filter(Boolean).length, 1);
    assert.equal(await sleepers[awake.indexOf(true)], 'claim');
    assert.equal(waker.sleeping, 2);
    waker.wake();
    assert.deepEqual(await Promise.all(sleepers.map(settled)), [true, true, true]);
    assert.deepEqual((await Promise.all(sleepers)).filter((why) => why === 'stop').length, 2);
  });

  it('says when nobody was asleep, and keeps nothing for the next sleeper (the relay keeps that state)', async () => {
    const waker = new Waker();
    assert.equal(waker.wakeOne('claim'), false);
    const next = waker.sleep(60_000);
    assert.equal(await settled(next), false, 'a wake-up with nobody asleep woke a later sleep');
    waker.wake();
    assert.equal(await next, 'stop');
  });

  it('ends a sleep with "timeout" when nobody wakes it', async () => {
    assert.equal(await new Waker().sleep(1), 'timeout');
  });
});
