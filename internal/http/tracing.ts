// The API's span (kind SERVER) for a route: it continues the caller's W3C trace context
// (traceparent / tracestate) or starts a new trace; a malformed traceparent is ignored, never
// an error. The span ends when the response is sent, with its status code.
import { SpanKind, SpanStatusCode, trace, type Context, type Tracer } from '@opentelemetry/api';
import type { Request, RequestHandler, Response } from 'express';
import { extractContext } from '../tracing/context.ts';

export function traceRequest(tracer: Tracer, route: string): RequestHandler {
  return (req, res, next) => {
    const carrier: Record<string, string> = {};
    for (const name of ['traceparent', 'tracestate']) {
      const value = req.get(name);
      if (value !== undefined) carrier[name] = value;
    }
    const parent = extractContext(carrier);
    const span = tracer.startSpan(`${req.method} ${route}`, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': req.method, 'http.route': route, 'url.path': req.path },
    }, parent);
    res.locals.traceContext = trace.setSpan(parent, span);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.once('finish', end);
    res.once('close', end);
    next();
  };
}

/** The request span's context (ROOT_CONTEXT outside a traced route). */
export function requestContext(_req: Request, res: Response): Context {
  return (res.locals.traceContext as Context | undefined) ?? extractContext(undefined);
}
