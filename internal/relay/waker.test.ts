// A nudge wakes one sleeper, and a nudge that found nobody asleep is not lost.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Waker } from './waker.ts';

const settled = async (p: Promise<void>) => {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe('Waker', () => {
  it('wakeOne wakes exactly one of several sleepers; wake wakes them all', async () => {
    const waker = new Waker();
    const sleepers = [waker.sleep(60_000), waker.sleep(60_000), waker.sleep(60_000)];
    waker.wakeOne();
    const awake = await Promise.all(sleepers.map(settled));
    assert.equal(awake.filter(Boolean).length, 1);
    waker.wake();
    assert.deepEqual(await Promise.all(sleepers.map(settled)), [true, true, true]);
  });

  it('keeps a nudge that found nobody asleep for the next sleeper, once', async () => {
    const waker = new Waker();
    waker.wakeOne(); // the worker was between "claimed nothing" and sleep()
    assert.equal(await settled(waker.sleep(60_000)), true, 'slept through the nudge');
    const next = waker.sleep(60_000);
    assert.equal(await settled(next), false, 'one nudge woke two sleeps');
    waker.wake();
    await next;
  });
});
