// Application errors carry a code; internal/http maps codes to statuses in one place.

export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'BAD_REQUEST'
  | 'INVALID_JSON'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'UNKNOWN_PRODUCT'
  | 'CONFLICT'
  | 'ORDER_NOT_CANCELLABLE'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'POISON_MESSAGE'
  /**
   * An event arrived before its aggregate's previous one was applied: rolled back, given back
   * and applied later. Never counted as a failed attempt, never dead-lettered.
   */
  | 'DEFERRED'
  | 'DATABASE_UNAVAILABLE'
  | 'TRANSPORT_CLOSED'
  /** The broker cannot be reached or did not answer in time: an outage, retried without counting. */
  | 'TRANSPORT_UNAVAILABLE'
  | 'INTERNAL';

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Safe to show a client: field-level problems, never SQL or stacks. */
    readonly details?: Record<string, string>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isAppError(error: unknown, code?: ErrorCode): error is AppError {
  return error instanceof AppError && (code === undefined || error.code === code);
}

// SQLSTATEs that mean "the database cannot serve this right now", not "your request is bad":
// down or unreachable, out of connections, or too slow (57014 statement timeout or cancel,
// 25P03 a transaction idle too long). Retrying later may work.
const UNAVAILABLE_SQLSTATES = new Set([
  '53300', '57P01', '57P02', '57P03', '57014', '25P03', '08000', '08001', '08003', '08004', '08006',
]);
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH']);

/** True when `error` says the database is down, unreachable or too slow, so retrying later may work. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code && (UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_ERRNOS.has(code))) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    error.message,
  );
}

/**
 * Why a program could not start, or refused to: an expected failure the user can fix, so the
 * command prints its message as one line, without a stack (internal/cli/exit.ts).
 */
export type StartupErrorCode =
  /** The HTTP port is taken. */
  | 'PORT_IN_USE'
  /** The HTTP port or HOST cannot be used by this process (privileged port, not our address). */
  | 'CANNOT_LISTEN'
  /** The embedded PostgreSQL could not be started or reached. */
  | 'DATABASE_START_FAILED'
  /** The program would harm something it found (another server is using this database). */
  | 'REFUSED'
  /** The program would wipe data it was not told it may wipe (missing --yes). */
  | 'CONFIRMATION_REQUIRED'
  /** TRANSPORT=nats without NATS_URL, and no nats-server binary to start a local broker. */
  | 'NATS_SERVER_MISSING'
  /** The local nats-server could not be started or attached to (port taken, no JetStream, it died). */
  | 'NATS_START_FAILED'
  /** NATS_URL (or the local server) did not accept a connection before the start-up deadline. */
  | 'NATS_UNREACHABLE';

export class StartupError extends Error {
  override name = 'StartupError';
  constructor(
    readonly code: StartupErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
