import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULTS, loadConfig } from './config.ts';
import { formatDuration, parseDuration } from './duration.ts';

describe('durations', () => {
  it('a whole number and a unit', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1m'), 60_000);
    assert.equal(parseDuration('24h'), 86_400_000);
    assert.equal(parseDuration(' 7d '), 604_800_000);
    for (const bad of ['7', '1.5h', '-1d', '1w', 'd', '']) assert.equal(parseDuration(bad), undefined, bad);
    assert.equal(formatDuration(604_800_000), '7d');
    assert.equal(formatDuration(90_000), '90s');
  });

  it('the retention settings: defaults, and an error that names the variable', () => {
    const config = loadConfig({});
    assert.equal(config.janitorIntervalMs, 60_000);
    assert.equal(config.inboxRetentionMs, 7 * 86_400_000);
    assert.equal(config.replayCopyRetentionMs, 86_400_000);
    assert.equal(config.idempotencyKeyTtlMs, DEFAULTS.idempotencyKeyTtlMs);
    assert.equal(loadConfig({ INBOX_RETENTION: '14d' }).inboxRetentionMs, 14 * 86_400_000);
    assert.throws(() => loadConfig({ INBOX_RETENTION: '7' }), (e) => e instanceof ConfigError && /^INBOX_RETENTION must be a whole number and a unit/.test(e.message));
    assert.throws(() => loadConfig({ JANITOR_INTERVAL: '10ms' }), (e) => e instanceof ConfigError && /^JANITOR_INTERVAL must be from 1s to 1d/.test(e.message));
  });
});
