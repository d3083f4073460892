// The single-flight cache: one read answers callers for cacheMs; ?fresh=1 callers get a read
// that started after they asked (a before/after check must not see a number from before).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cachedRead } from './cached.ts';

describe('cachedRead', () => {
  it('shares a read within cacheMs, but a fresh caller gets one that started after it asked', async () => {
    let clock = 1_000;
    let loads = 0;
    const reader = cachedRead(async () => ++loads, 500, () => clock);
    assert.equal(await reader.read(), 1);
    clock += 100;
    assert.equal(await reader.read(), 1, 'cached');
    assert.equal(await reader.read(clock), 2, 'fresh: the cached read started before the request');
    assert.equal(await reader.read(clock), 2, 'a read that started at the request is fresh enough');
    clock += 600;
    assert.equal(await reader.read(), 3, 'expired');
  });
});
