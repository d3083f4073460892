// The one place that reads the environment. Everything else is handed a Config.
import { isIP } from 'node:net';
import path from 'node:path';
import type { LogLevel } from '../log/logger.ts';
import type { TracingConfig } from '../tracing/tracing.ts';
import { DURATION_FORMAT, formatDuration, parseDuration } from './duration.ts';

/**
 * How idle workers learn of new events (internal/outbox/wakeup.ts): a nudge and a coalesced
 * NOTIFY after the commit, a NOTIFY inside the order transaction (the older way, for
 * comparison), or polling alone. Polling runs in every mode.
 */
export type WakeupMode = 'notify' | 'notify-in-transaction' | 'poll';
/** How the consumer applies a claimed batch: one transaction per message, or one per batch. */
export type ConsumerMode = 'per-message' | 'batch';
/** How an event reaches the inventory: a function call in this process, or NATS JetStream. */
export type TransportMode = 'in-process' | 'nats';

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
  /** How long one statement may run, or a transaction sit idle, before PostgreSQL ends it (0 = no limit). */
  statementTimeoutMs: number;
  /** Deliveries an event gets before it is moved to dead_letters. */
  maxAttempts: number;
  /** Backoff after the first failed delivery; doubles per attempt up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Fault injection: the share of deliveries that fail on purpose (0 = none). */
  failRate: number;
  /** Seed for the injected failures, so a run can be repeated. */
  faultSeed: number | undefined;
  /** Test hook: SIGKILL this process the n-th time it reaches a crash point. */
  crashAt: CrashAt | undefined;
  /** Let the dashboard's buttons answer clients on other machines (default: loopback only). */
  dashboardRemoteActions: boolean;
  /** ALLOWED_HOSTS: names (besides loopback and HOST) this server answers to; see internal/http/guard.ts. */
  allowedHosts: string[];
  wakeup: WakeupMode;
  consumerMode: ConsumerMode;
  /** A relay process's name; its workers are "<name>/Worker-N". Unset: plain "Worker-N". */
  relayName: string | undefined;
  // Retention (the janitor); all in milliseconds, read from durations such as "7d".
  /** How often the janitor prunes (JANITOR_INTERVAL). */
  janitorIntervalMs: number;
  /** How long processed_messages and skipped_duplicates rows are kept (INBOX_RETENTION). */
  inboxRetentionMs: number;
  /** How long a processed message keeps its replay copy, type and payload (REPLAY_COPY_RETENTION). */
  replayCopyRetentionMs: number;
  /** After this, an Idempotency-Key is forgotten and may be used again (IDEMPOTENCY_KEY_TTL). */
  idempotencyKeyTtlMs: number;
  /** Reads for /stats, /metrics and the dashboard (see readConfig below). */
  reads: ReadConfig;
  transport: TransportMode;
  /** The broker and the inventory service (TRANSPORT=nats; see brokerConfig below). */
  broker: BrokerConfig;
  /** OpenTelemetry (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME): see internal/tracing/tracing.ts. */
  tracing: TracingConfig;
}

export const CRASH_POINTS = ['mid-order', 'after-claim', 'mid-consume', 'after-consume'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];
export interface CrashAt {
  point: CrashPoint;
  /** 1 = the first time the point is reached. */
  hit: number;
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
  statementTimeoutMs: 10_000,
  maxAttempts: 5,
  retryBaseMs: 1_000,
  retryMaxMs: 60_000,
  dashboardRemoteActions: false,
  wakeup: 'notify' as WakeupMode,
  consumerMode: 'per-message' as ConsumerMode,
  janitorIntervalMs: 60_000,
  inboxRetentionMs: 7 * 86_400_000,
  replayCopyRetentionMs: 86_400_000,
  idempotencyKeyTtlMs: 86_400_000,
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
    workers: int(env, 'WORKERS', DEFAULTS.workers, 1, 64),
    pollIntervalMs: int(env, 'POLL_INTERVAL_MS', DEFAULTS.pollIntervalMs, 10, 3_600_000),
    batchSize: int(env, 'BATCH_SIZE', DEFAULTS.batchSize, 1, 1000),
    // The workers' statement timeout is half the lease: under 500 ms a claim barely gets to run.
    leaseMs: int(env, 'LEASE_MS', DEFAULTS.leaseMs, 1_000, 3_600_000),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, DEFAULTS.logLevel),
    connectionTimeoutMs: int(env, 'DB_CONNECTION_TIMEOUT_MS', DEFAULTS.connectionTimeoutMs, 100, 600_000),
    statementTimeoutMs: int(env, 'DB_STATEMENT_TIMEOUT_MS', DEFAULTS.statementTimeoutMs, 0, 3_600_000),
    maxAttempts: int(env, 'MAX_ATTEMPTS', DEFAULTS.maxAttempts, 1, 100),
    retryBaseMs: int(env, 'RETRY_BASE_MS', DEFAULTS.retryBaseMs, 1, 3_600_000),
    retryMaxMs: int(env, 'RETRY_MAX_MS', DEFAULTS.retryMaxMs, 1, 86_400_000),
    failRate: fraction(env, 'FAIL_RATE'),
    faultSeed: nonEmpty(env.FAULT_SEED) === undefined ? undefined : int(env, 'FAULT_SEED', 0, 0, 2 ** 31 - 1),
    crashAt: crashAt(env.CRASH_AT),
    dashboardRemoteActions: bool(env, 'DASHBOARD_REMOTE_ACTIONS', DEFAULTS.dashboardRemoteActions),
    allowedHosts: hostNames(env, 'ALLOWED_HOSTS'),
    wakeup: oneOf(env, 'WAKEUP', ['notify', 'notify-in-transaction', 'poll'], DEFAULTS.wakeup),
    consumerMode: oneOf(env, 'CONSUMER_MODE', ['per-message', 'batch'], DEFAULTS.consumerMode),
    relayName: relayName(env.RELAY_NAME),
    ...retention(env),
    reads: readConfig(env),
    transport: oneOf(env, 'TRANSPORT', ['in-process', 'nats'], 'in-process'),
    broker: brokerConfig(env),
    tracing: { otlpEndpoint: httpUrl(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'), serviceName: nonEmpty(env.OTEL_SERVICE_NAME) },
  };
  return validate({ ...config, ...overrides });
}

/**
 * Rules that tie variables together, checked after defaults and overrides are in. Each says
 * which variables and why, in one line, like the per-variable checks.
 */
export function validate(config: Config): Config {
  if (config.retryBaseMs > config.retryMaxMs) {
    throw new ConfigError(
      `RETRY_BASE_MS (${config.retryBaseMs}) must not exceed RETRY_MAX_MS (${config.retryMaxMs}): the first backoff is the smallest`,
    );
  }
  // A replay reads a processed message's copy and then puts the message back; its record must
  // outlive the copy, or the janitor could prune it in between and the replay would be applied
  // as a first delivery.
  if (config.replayCopyRetentionMs > config.inboxRetentionMs) {
    throw new ConfigError('REPLAY_COPY_RETENTION must not exceed INBOX_RETENTION: a replayable message must still be recognised as processed');
  }
  if (config.transport === 'nats') validateBroker(config);
  return config;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  // Number() would also take "0x5", "1e1", "5.0" and "+5": only plain decimal digits are meant.
  if (!/^-?\d{1,16}$/.test(raw)) {
    throw new ConfigError(`${name} must be a decimal integer from ${min} to ${max}, got "${raw}"`);
  }
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(`${name} must be a decimal integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function fraction(env: Env, name: string): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return 0;
  const value = Number(raw);
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(raw) || value > 1) {
    throw new ConfigError(`${name} must be a number from 0 to 1, got "${raw}"`);
  }
  return value;
}

function crashAt(raw: string | undefined): CrashAt | undefined {
  const value = nonEmpty(raw);
  if (value === undefined) return undefined;
  const [point, hit = '1'] = value.split(':');
  const n = Number(hit);
  if (!CRASH_POINTS.includes(point as CrashPoint) || !/^\d{1,9}$/.test(hit) || n < 1) {
    throw new ConfigError(`CRASH_AT must be <point>[:<n>] with point one of ${CRASH_POINTS.join(', ')}, got "${raw}"`);
  }
  return { point: point as CrashPoint, hit: n };
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = nonEmpty(env[name])?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name} must be 1 or 0 (true or false), got "${env[name]}"`);
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

// Retention settings: durations, so nobody has to count the zeros of 7 days in milliseconds.
const SECOND = 1_000;
const YEAR = 365 * 86_400_000;

function retention(env: Env): Pick<Config, 'janitorIntervalMs' | 'inboxRetentionMs' | 'replayCopyRetentionMs' | 'idempotencyKeyTtlMs'> {
  return {
    janitorIntervalMs: duration(env, 'JANITOR_INTERVAL', DEFAULTS.janitorIntervalMs, SECOND, 86_400_000),
    inboxRetentionMs: duration(env, 'INBOX_RETENTION', DEFAULTS.inboxRetentionMs, SECOND, 10 * YEAR),
    replayCopyRetentionMs: duration(env, 'REPLAY_COPY_RETENTION', DEFAULTS.replayCopyRetentionMs, SECOND, 10 * YEAR),
    idempotencyKeyTtlMs: duration(env, 'IDEMPOTENCY_KEY_TTL', DEFAULTS.idempotencyKeyTtlMs, SECOND, 10 * YEAR),
  };
}

function duration(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  const value = parseDuration(raw);
  if (value === undefined) throw new ConfigError(`${name} must be ${DURATION_FORMAT}, got "${raw}"`);
  if (value < min || value > max) {
    throw new ConfigError(`${name} must be from ${formatDuration(min)} to ${formatDuration(max)}, got "${raw}"`);
  }
  return value;
}

/**
 * A comma-separated list of host names or IP addresses, lowercased; IPv6 in brackets, as a
 * Host header carries it. No port: the Host check compares names only (see http/guard.ts).
 */
function hostNames(env: Env, name: string): string[] {
  const names: string[] = [];
  for (const entry of (env[name] ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const bracketed = isIP(entry) === 6 ? `[${entry}]` : entry;
    let url: URL | undefined;
    try {
      url = new URL(`http://${bracketed}`);
    } catch {
      url = undefined;
    }
    if (!url || url.port !== '' || /[/@?#\\]/.test(entry)) {
      throw new ConfigError(`${name} must be host names or IP addresses separated by commas, without scheme or port; got "${entry}"`);
    }
    names.push(url.hostname);
  }
  return names;
}
// ---- Reads: GET /stats, GET /metrics and the dashboard -----------------------------------
/** How the numbers are read: their own small pool, a short statement timeout, a short cache. */
export interface ReadConfig {
  /** Connections of the readers' pool (application_name outbox-demo:reader). */
  poolSize: number;
  /** A read that takes longer is ended by PostgreSQL (the caller gets a 503). */
  statementTimeoutMs: number;
  /** One read answers every caller for this long (at most 1 s). */
  cacheMs: number;
  /** An order PENDING longer than this counts in orders_pending_too_long. */
  pendingOrderThresholdMs: number;
}

export const READ_DEFAULTS: ReadConfig = { poolSize: 2, statementTimeoutMs: 2_000, cacheMs: 500, pendingOrderThresholdMs: 60_000 };

function readConfig(env: Env): ReadConfig {
  return {
    poolSize: int(env, 'READ_POOL_SIZE', READ_DEFAULTS.poolSize, 1, 20),
    statementTimeoutMs: int(env, 'READ_STATEMENT_TIMEOUT_MS', READ_DEFAULTS.statementTimeoutMs, 100, 60_000),
    cacheMs: int(env, 'STATS_CACHE_MS', READ_DEFAULTS.cacheMs, 0, 1_000),
    pendingOrderThresholdMs: int(env, 'PENDING_ORDER_ALERT_MS', READ_DEFAULTS.pendingOrderThresholdMs, 1_000, 86_400_000),
  };
}
// ---- end of reads ----

// ---- The broker: TRANSPORT=nats ------------------------------------------------------------
export interface BrokerConfig {
  /** NATS_URL (comma-separated for a cluster); unset: a local nats-server is started or attached to. */
  natsUrl: string | undefined;
  /** Where the local nats-server listens (127.0.0.1). */
  natsPort: number;
  /** How long JetStream remembers a Nats-Msg-Id to drop a second copy (NATS_DUPLICATE_WINDOW). */
  duplicateWindowMs: number;
  /** Copies of each stream (NATS_REPLICAS): 1 on one server, 3 across a three-node cluster. */
  replicas: number;
  /** A delivered message not acknowledged within this is delivered again (NATS_ACK_WAIT). */
  ackWaitMs: number;
  /** How long a publish waits for the stream's acknowledgement (NATS_PUBLISH_TIMEOUT_MS). */
  publishTimeoutMs: number;
  /** How long a starting service tries to reach NATS before it gives up (NATS_CONNECT_TIMEOUT). */
  connectTimeoutMs: number;
  /** The inventory service's own database; unset: `outbox_demo_inventory` beside the order database. */
  inventoryDatabaseUrl: string | undefined;
  /** The inventory service's HTTP port (health, metrics, stats). */
  inventoryPort: number;
  /** INVENTORY_URL: where the order service reads the inventory's /stats; unset: see inventoryServiceUrl. */
  inventoryUrl: string | undefined;
  /** How long the order service's /stats waits for JetStream and for the inventory service (BROKER_STATS_TIMEOUT_MS). */
  statsTimeoutMs: number;
}

export const BROKER_DEFAULTS = {
  natsPort: 4222,
  duplicateWindowMs: 20 * 60_000,
  replicas: 1,
  ackWaitMs: 30_000,
  publishTimeoutMs: 5_000,
  connectTimeoutMs: 30_000,
  inventoryPort: 8081,
  statsTimeoutMs: 1_000,
} as const;

function brokerConfig(env: Env): BrokerConfig {
  return {
    natsUrl: nonEmpty(env.NATS_URL),
    natsPort: int(env, 'NATS_PORT', BROKER_DEFAULTS.natsPort, 1, 65535),
    duplicateWindowMs: duration(env, 'NATS_DUPLICATE_WINDOW', BROKER_DEFAULTS.duplicateWindowMs, SECOND, 7 * 86_400_000),
    replicas: int(env, 'NATS_REPLICAS', BROKER_DEFAULTS.replicas, 1, 5),
    ackWaitMs: duration(env, 'NATS_ACK_WAIT', BROKER_DEFAULTS.ackWaitMs, SECOND, 3_600_000),
    publishTimeoutMs: int(env, 'NATS_PUBLISH_TIMEOUT_MS', BROKER_DEFAULTS.publishTimeoutMs, 100, 600_000),
    connectTimeoutMs: duration(env, 'NATS_CONNECT_TIMEOUT', BROKER_DEFAULTS.connectTimeoutMs, SECOND, 3_600_000),
    inventoryDatabaseUrl: nonEmpty(env.INVENTORY_DATABASE_URL),
    inventoryPort: int(env, 'INVENTORY_PORT', BROKER_DEFAULTS.inventoryPort, 0, 65535),
    inventoryUrl: httpUrl(env, 'INVENTORY_URL'),
    statsTimeoutMs: int(env, 'BROKER_STATS_TIMEOUT_MS', BROKER_DEFAULTS.statsTimeoutMs, 50, 60_000),
  };
}

/** The inventory service's base URL as the order service calls it: INVENTORY_URL, or this machine's INVENTORY_PORT. */
export function inventoryServiceUrl(config: Pick<Config, 'broker'>): string {
  return config.broker.inventoryUrl ?? `http://127.0.0.1:${config.broker.inventoryPort}`;
}

function httpUrl(env: Env, name: string): string | undefined {
  const value = nonEmpty(env[name]);
  if (value === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ConfigError(`${name} must be an http:// or https:// URL, e.g. http://inventory-host:8081; got "${value}"`);
  }
  return value.replace(/\/+$/, '');
}

/**
 * The longest an event can keep coming back on its own: every attempt may run out its lease,
 * and every failure waits its longest backoff (jitter only ever shortens one).
 * Retention must be far longer than this, and longer than any stall or replay you expect.
 */
export function longestRetryPathMs(config: Pick<Config, 'leaseMs' | 'maxAttempts' | 'retryBaseMs' | 'retryMaxMs'>): number {
  let backoffs = 0;
  for (let attempt = 1; attempt < config.maxAttempts; attempt++) {
    backoffs += Math.min(config.retryBaseMs * 2 ** (attempt - 1), config.retryMaxMs);
  }
  return config.maxAttempts * config.leaseMs + backoffs;
}

function validateBroker(config: Config): void {
  if (config.consumerMode === 'batch') {
    throw new ConfigError('CONSUMER_MODE=batch works with TRANSPORT=in-process only: over NATS each message is acknowledged on its own');
  }
  if (config.broker.replicas > 1 && !config.broker.natsUrl) {
    throw new ConfigError(`NATS_REPLICAS=${config.broker.replicas} needs a cluster: set NATS_URL to its nodes (the local nats-server is a single node)`);
  }
  const span = longestRetryPathMs(config);
  if (config.broker.duplicateWindowMs < span) {
    throw new ConfigError(
      `NATS_DUPLICATE_WINDOW (${formatDuration(config.broker.duplicateWindowMs)}) must cover the relay's longest retry span ` +
        `(${formatDuration(span)} with MAX_ATTEMPTS, RETRY_*_MS and LEASE_MS): a republish after the window is stored twice`,
    );
  }
  if (config.statementTimeoutMs !== 0 && config.broker.ackWaitMs <= config.statementTimeoutMs) {
    throw new ConfigError('NATS_ACK_WAIT must exceed DB_STATEMENT_TIMEOUT_MS: a message is redelivered to another consumer while its first delivery may still commit');
  }
}
// ---- end of broker --------------------------------------------------------------------------

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

/** For the browser test: where Chromium is, whether it must run (CI), where the screenshot goes. */
export interface BrowserTestSettings {
  /** CHROMIUM_PATH when set; otherwise the test looks in the usual places. */
  chromiumPath: string | undefined;
  /** CI=true: a missing Chromium fails the test instead of skipping it. */
  required: boolean;
  /** SCREENSHOT_PATH: also save the screenshot here (e.g. docs/dashboard.png, to refresh the README's). */
  screenshotPath: string | undefined;
}

/** CI=true: tests that need an installed program (Chromium, nats-server) fail without it instead of skipping. */
export function ciRequiresEverything(env: Env = process.env): boolean {
  return nonEmpty(env.CI)?.toLowerCase() === 'true';
}

export function browserTestSettings(env: Env = process.env): BrowserTestSettings {
  const screenshot = nonEmpty(env.SCREENSHOT_PATH);
  return {
    chromiumPath: nonEmpty(env.CHROMIUM_PATH),
    required: ciRequiresEverything(env),
    screenshotPath: screenshot === undefined ? undefined : path.resolve(screenshot),
  };
}
