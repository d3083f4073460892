// Configuration is validated strictly: a bad value stops the program with one line that names
// the variable and the rule, instead of becoming a surprising number.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULTS, inventoryServiceUrl, loadConfig } from './config.ts';

// Each of these was accepted before (the first five are the issue's own findings).
const REJECTED: [env: Record<string, string>, names: string, rule: RegExp][] = [
  [{ WORKERS: '0x5' }, 'WORKERS', /decimal integer/],
  [{ WORKERS: '1e1' }, 'WORKERS', /decimal integer/],
  [{ WORKERS: '0' }, 'WORKERS', /from 1 to/],
  [{ LEASE_MS: '100' }, 'LEASE_MS', /from 1000 to/],
  [{ RETRY_BASE_MS: '60000', RETRY_MAX_MS: '1' }, 'RETRY_BASE_MS', /RETRY_MAX_MS/],
  [{ REPLAY_COPY_RETENTION: '8d' }, 'REPLAY_COPY_RETENTION', /INBOX_RETENTION/],
  [{ WORKERS: '5.0' }, 'WORKERS', /decimal integer/],
  [{ WORKERS: '+5' }, 'WORKERS', /decimal integer/],
  [{ WORKERS: '-1' }, 'WORKERS', /from 1 to/],
  [{ WORKERS: 'five' }, 'WORKERS', /decimal integer/],
  [{ WORKERS: '5 workers' }, 'WORKERS', /decimal integer/],
  [{ PORT: '65536' }, 'PORT', /from 0 to 65535/],
  [{ PORT: '80.5' }, 'PORT', /decimal integer/],
  [{ PORT: 'http' }, 'PORT', /decimal integer/],
  [{ EMBEDDED_PG_PORT: '0' }, 'EMBEDDED_PG_PORT', /from 1 to 65535/],
  [{ BATCH_SIZE: '0' }, 'BATCH_SIZE', /from 1 to/],
  [{ POLL_INTERVAL_MS: '0x10' }, 'POLL_INTERVAL_MS', /decimal integer/],
  [{ MAX_ATTEMPTS: '0' }, 'MAX_ATTEMPTS', /from 1 to/],
  [{ RETRY_BASE_MS: '0' }, 'RETRY_BASE_MS', /from 1 to/],
  [{ DB_STATEMENT_TIMEOUT_MS: '1e3' }, 'DB_STATEMENT_TIMEOUT_MS', /decimal integer/],
  [{ DB_CONNECTION_TIMEOUT_MS: '99' }, 'DB_CONNECTION_TIMEOUT_MS', /from 100 to/],
  [{ FAULT_SEED: '0x1' }, 'FAULT_SEED', /decimal integer/],
  [{ FAIL_RATE: '2' }, 'FAIL_RATE', /from 0 to 1/],
  [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /one of/],
];

const ACCEPTED: [env: Record<string, string>, expected: Partial<ReturnType<typeof loadConfig>>][] = [
  [{}, { workers: DEFAULTS.workers, leaseMs: DEFAULTS.leaseMs, port: DEFAULTS.port }],
  [{ WORKERS: '1' }, { workers: 1 }],
  [{ WORKERS: ' 64 ' }, { workers: 64 }],
  [{ WORKERS: '007' }, { workers: 7 }],
  [{ LEASE_MS: '1000' }, { leaseMs: 1000 }],
  [{ PORT: '0' }, { port: 0 }],
  [{ PORT: '65535' }, { port: 65535 }],
  [{ RETRY_BASE_MS: '500', RETRY_MAX_MS: '500' }, { retryBaseMs: 500, retryMaxMs: 500 }],
  [{ REPLAY_COPY_RETENTION: '7d', INBOX_RETENTION: '7d' }, { replayCopyRetentionMs: 7 * 86_400_000, inboxRetentionMs: 7 * 86_400_000 }],
  [{ DB_STATEMENT_TIMEOUT_MS: '0' }, { statementTimeoutMs: 0 }],
  [{ WORKERS: '' }, { workers: DEFAULTS.workers }],
];

describe('configuration from the environment', () => {
  for (const [env, name, rule] of REJECTED) {
    it(`rejects ${JSON.stringify(env)}, naming ${name}`, () => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, `a ConfigError, got ${String(error)}`);
          assert.ok(error.message.startsWith(name), `names ${name} first: ${error.message}`);
          assert.match(error.message, rule);
          assert.doesNotMatch(error.message, /\n/, 'one line');
          return true;
        },
      );
    });
  }

  for (const [env, expected] of ACCEPTED) {
    it(`accepts ${JSON.stringify(env)}`, () => {
      const config = loadConfig(env);
      for (const [key, value] of Object.entries(expected)) assert.equal(config[key as keyof typeof config], value, key);
    });
  }

  it('INVENTORY_URL: where the order service reads the inventory service (default: this machine, INVENTORY_PORT)', () => {
    assert.equal(inventoryServiceUrl(loadConfig({ INVENTORY_PORT: '18501' })), 'http://127.0.0.1:18501');
    assert.equal(inventoryServiceUrl(loadConfig({ INVENTORY_URL: 'http://inventory-host:8081/' })), 'http://inventory-host:8081');
    assert.throws(() => loadConfig({ INVENTORY_URL: 'inventory-host:8081' }), /^ConfigError: INVENTORY_URL must be an http/);
    assert.equal(loadConfig({ BROKER_STATS_TIMEOUT_MS: '250' }).broker.statsTimeoutMs, 250);
  });

  it('applies the cross-field rules to overrides too (tests and tools build configs that way)', () => {
    assert.throws(() => loadConfig({}, { retryBaseMs: 10, retryMaxMs: 5 }), /RETRY_BASE_MS/);
  });
});
