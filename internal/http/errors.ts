// The one place where error codes become HTTP statuses. Clients never see stacks or SQL.
import type { ErrorRequestHandler } from 'express';
import { AppError, isDatabaseUnavailable, type ErrorCode } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';

const STATUS: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  INVALID_JSON: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  UNKNOWN_PRODUCT: 422,
  CONFLICT: 409,
  ORDER_NOT_CANCELLABLE: 409,
  IDEMPOTENCY_KEY_REUSED: 422,
  POISON_MESSAGE: 500,
  // Never reaches HTTP (a consumer's answer to the relay or the broker); the map must be total.
  DEFERRED: 503,
  TRANSPORT_CLOSED: 503,
  TRANSPORT_UNAVAILABLE: 503,
  DATABASE_UNAVAILABLE: 503,
  INTERNAL: 500,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, string> };
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const appError = toAppError(error);
    const status = STATUS[appError.code];
    if (status >= 500) {
      // The full story stays in the server's log; the client gets the code and a plain message.
      logger.error(`${req.method} ${req.path} → ${status} ${appError.code}`, error);
    }
    const body: ErrorBody = { error: { code: appError.code, message: appError.message } };
    if (appError.details) body.error.details = appError.details;
    res.status(status).json(body);
  };
}

/** body-parser's limit in bytes, as "the 4 kB limit (4096 bytes)" (its "kb" is 1024 bytes). */
function describeLimit(limit: unknown): string {
  if (typeof limit !== 'number') return 'the size limit';
  return limit % 1024 === 0 ? `the ${limit / 1024} kB limit (${limit} bytes)` : `the ${limit}-byte limit`;
}

function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  // body-parser's errors carry a `type`; map the ones a client can cause.
  const type = (error as { type?: string }).type;
  if (type === 'entity.parse.failed') return new AppError('INVALID_JSON', 'request body is not valid JSON');
  if (type === 'entity.too.large') {
    return new AppError('PAYLOAD_TOO_LARGE', `the request body is larger than ${describeLimit((error as { limit?: unknown }).limit)}`);
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', 'request body must be UTF-8 JSON');
  }
  // Any other error the HTTP layer marks as the client's (bad gzip, aborted upload…).
  const status = (error as { status?: number; expose?: boolean }).status;
  if ((error as { expose?: boolean }).expose === true && typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError('BAD_REQUEST', 'the request could not be read');
  }
  // Express could not decode a percent-encoded path parameter (e.g. /orders/%E0%A4%A).
  if (error instanceof URIError) return new AppError('NOT_FOUND', 'malformed URL');
  if (isDatabaseUnavailable(error)) {
    return new AppError('DATABASE_UNAVAILABLE', 'the database is unavailable; try again shortly', undefined, { cause: error });
  }
  return new AppError('INTERNAL', 'internal error', undefined, { cause: error });
}
