// The one place that reads the environment. Everything else is handed a Config.
import path from 'node:path';
import type { LogLevel } from '../log/logger.ts';

/** How idle workers learn of new events: LISTEN/NOTIFY plus polling, or polling alone. */
export type WakeupMode = 'notify' | 'poll';
/** How the consumer applies a claimed batch: one transaction per message, or one per batch. */
export type ConsumerMode = 'per-message' | 'batch';

export interface Config {
  /** When set, use this PostgreSQL; when empty, run the embedded one. */
  databaseUrl: string | undefined;
  /** Where the embedded PostgreSQL keeps its files (absolute). */
  dataDir: string;
  embeddedPgPort: number;
  host: string;
  port: number;
  workers: number;
  pollIntervalMs: number;
  batchSize: number;
  /** How long a claimed event stays reserved for the worker that claimed it. */
  leaseMs: number;
  logLevel: LogLevel;
  /** How long a request may wait for a free database connection. */
  connectionTimeoutMs: number;
  wakeup: WakeupMode;
  consumerMode: ConsumerMode;
  /** A relay process's name; its workers are "<name>/Worker-N". Unset: plain "Worker-N". */
  relayName: string | undefined;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

export const DEFAULTS = {
  dataDir: '.data',
  embeddedPgPort: 54329,
  host: '127.0.0.1',
  port: 8080,
  workers: 5,
  pollIntervalMs: 500,
  batchSize: 10,
  leaseMs: 30_000,
  logLevel: 'info' as LogLevel,
  connectionTimeoutMs: 5_000,
  wakeup: 'notify' as WakeupMode,
  consumerMode: 'per-message' as ConsumerMode,
} as const;

type Env = Record<string, string | undefined>;

/** Fill defaults from `env`, then validate; a bad value fails loudly at start-up. */
export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const config: Config = {
    databaseUrl: nonEmpty(env.DATABASE_URL),
    dataDir: path.resolve(nonEmpty(env.DATA_DIR) ?? DEFAULTS.dataDir),
    embeddedPgPort: int(env, 'EMBEDDED_PG_PORT', DEFAULTS.embeddedPgPort, 1, 65535),
    host: nonEmpty(env.HOST) ?? DEFAULTS.host,
    port: int(env, 'PORT', DEFAULTS.port, 0, 65535),
    workers: int(env, 'WORKERS', DEFAULTS.workers, 0, 64),
    pollIntervalMs: int(env, 'POLL_INTERVAL_MS', DEFAULTS.pollIntervalMs, 10, 3_600_000),
    batchSize: int(env, 'BATCH_SIZE', DEFAULTS.batchSize, 1, 1000),
    leaseMs: int(env, 'LEASE_MS', DEFAULTS.leaseMs, 100, 3_600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, DEFAULTS.logLevel),
    connectionTimeoutMs: int(env, 'DB_CONNECTION_TIMEOUT_MS', DEFAULTS.connectionTimeoutMs, 100, 600_000),
    wakeup: oneOf(env, 'WAKEUP', ['notify', 'poll'], DEFAULTS.wakeup),
    consumerMode: oneOf(env, 'CONSUMER_MODE', ['per-message', 'batch'], DEFAULTS.consumerMode),
    relayName: relayName(env.RELAY_NAME),
  };
  return { ...config, ...overrides };
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = nonEmpty(env[name])?.toLowerCase() ?? fallback;
  if (!allowed.includes(value as T)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got "${env[name]}"`);
  }
  return value as T;
}

function relayName(raw: string | undefined): string | undefined {
  const value = nonEmpty(raw);
  // It becomes part of every worker name (processed_messages.handled_by), so keep it plain.
  if (value !== undefined && !/^[\w.-]{1,40}$/.test(value)) {
    throw new ConfigError(`RELAY_NAME must be 1 to 40 letters, digits, ".", "_" or "-", got "${raw}"`);
  }
  return value;
}

/** Whether output should be colored: NO_COLOR wins, then FORCE_COLOR, then "is it a TTY". */
export function colorEnabled(stream: { isTTY?: boolean }, env: Env = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  return Boolean(stream.isTTY);
}

/**
 * For tests: the server on which each test file creates its own database. `npm test` sets
 * TEST_ADMIN_DATABASE_URL (an embedded server it started, or DATABASE_URL's server).
 */
export function testAdminDatabaseUrl(env: Env = process.env): string {
  const url = nonEmpty(env.TEST_ADMIN_DATABASE_URL);
  if (!url) throw new ConfigError('TEST_ADMIN_DATABASE_URL is not set: run the tests with `npm test`');
  return url;
}
