// Instant wake-up: one dedicated connection per process LISTENs on the outbox channel and
// nudges the idle workers when an event commits. It only nudges. Polling stays the source of
// truth, so a notification lost while this connection is down costs at most one poll
// interval, and after every (re)connect it nudges once to catch up on what it missed.
//
// Why not a pooled client: LISTEN belongs to a session, and a pool hands sessions around.
import pg from 'pg';
import type { Logger } from '../log/logger.ts';
import { OUTBOX_CHANNEL } from './outbox.ts';

export const LISTENER_APPLICATION_NAME = 'outbox-demo:listener';

export interface OutboxListenerOptions {
  url: string;
  /** Called on every notification, and once after every (re)connect. Must be cheap. */
  onNotify: () => void;
  /**
   * A notification whose payload is this is not passed on: it came from this process's own
   * after-commit wake-up, which woke these workers in memory already (wakeup.ts, `origin`).
   */
  ignorePayload?: string;
  logger: Logger;
  applicationName?: string;
  /** Reconnect backoff: first delay and cap, before jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class OutboxListener {
  private client: pg.Client | undefined;
  private closed = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private sessionCount = 0;
  private readonly log: Logger;

  constructor(private readonly options: OutboxListenerOptions) {
    this.log = options.logger.child('Listener');
  }

  /** How many LISTEN sessions have been established so far (1 + reconnects). */
  get sessions(): number {
    return this.sessionCount;
  }

  get listening(): boolean {
    return this.client !== undefined;
  }

  /** Connects and listens. Never throws: a failed first attempt is retried like a lost session. */
  async start(): Promise<void> {
    this.closed = false;
    await this.connect();
  }

  /** Stops listening for good. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    // A server that cannot answer (frozen, unreachable) never acknowledges the goodbye:
    // shutdown does not wait for it longer than a moment.
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000)));
    await Promise.race([client?.end().catch(() => undefined), giveUp]);
    clearTimeout(timer);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.url,
      application_name: this.options.applicationName ?? LISTENER_APPLICATION_NAME,
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    });
    client.on('notification', (message) => {
      if (this.options.ignorePayload !== undefined && message.payload === this.options.ignorePayload) return;
      this.options.onNotify();
    });
    // 'error' and 'end' both may fire for one loss; lost() acts on the current client only.
    client.on('error', (error) => this.lost(client, error.message));
    client.on('end', () => this.lost(client, 'connection closed'));
    try {
      await client.connect();
      await client.query(`LISTEN ${client.escapeIdentifier(OUTBOX_CHANNEL)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      this.scheduleReconnect(`cannot listen: ${(error as Error).message}`);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.sessionCount += 1;
    this.failures = 0;
    this.log.info(
      this.sessionCount === 1
        ? `listening on channel "${OUTBOX_CHANNEL}": new events wake a worker at once`
        : `listening again on "${OUTBOX_CHANNEL}"; looking for events committed meanwhile`,
    );
    // Anything committed while nobody listened was announced to no one.
    this.options.onNotify();
  }

  private lost(client: pg.Client, reason: string): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.scheduleReconnect(`lost the listening session (${reason})`);
  }

  /** Exponential backoff with jitter, so many processes that lost the database do not return in step. */
  private scheduleReconnect(reason: string): void {
    if (this.closed) return;
    this.failures += 1;
    const min = this.options.minBackoffMs ?? 100;
    const max = this.options.maxBackoffMs ?? 10_000;
    const delay = Math.round(Math.min(min * 2 ** (this.failures - 1), max) * (0.5 + Math.random() / 2));
    this.log.warn(`${reason}; reconnecting in ${delay} ms (polling covers the gap)`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }
}
