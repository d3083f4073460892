// W3C trace context in and out of plain string maps: HTTP request headers, the outbox's
// `headers` column, a transport envelope's headers. Contexts are passed explicitly, never
// through a global context manager. A malformed traceparent is ignored by the propagator:
// the step starts a new trace instead of failing.
import { ROOT_CONTEXT, trace, type Context, type TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

const propagator = new W3CTraceContextPropagator();

export type Carrier = Record<string, string>;

// Header names arrive in any case (a broker may canonicalise them); the propagator asks in lower case.
const getter: TextMapGetter<Carrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key] ?? Object.entries(carrier).find(([k]) => k.toLowerCase() === key)?.[1],
};

/** The context a carrier continues (ROOT_CONTEXT when it has none or a malformed one). */
export function extractContext(carrier: Readonly<Carrier> | undefined): Context {
  if (!carrier) return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, carrier as Carrier, getter);
}

/** traceparent (and tracestate) for `context`; empty when it holds no valid span (tracing off). */
export function injectContext(context: Context): Carrier {
  const carrier: Carrier = {};
  propagator.inject(context, carrier, { set: (c, key, value) => { c[key] = value; } });
  return carrier;
}

/** `headers` with the trace context replaced by `context`'s; other entries kept. */
export function withContext(headers: Readonly<Carrier> | undefined, context: Context): Carrier {
  const rest = Object.fromEntries(Object.entries(headers ?? {}).filter(([k]) => !TRACE_HEADERS.has(k.toLowerCase())));
  return { ...rest, ...injectContext(context) };
}

const TRACE_HEADERS = new Set(['traceparent', 'tracestate']);

/** The 32-hex trace id a carrier belongs to, if it carries a valid context. */
export function traceIdOf(carrier: Readonly<Carrier> | undefined): string | undefined {
  return trace.getSpanContext(extractContext(carrier))?.traceId;
}

/** First 8 hex digits of a trace id: enough to grep one order's journey out of the logs. */
export function shortTraceId(traceId: string | null | undefined): string | undefined {
  return traceId ? traceId.slice(0, 8) : undefined;
}

/** " (traces 4bf92f35 0af76519)" for a line about several events: each one's short trace id, once. */
export function tracesTag(carriers: ReadonlyArray<Readonly<Carrier> | undefined>): string {
  const ids = [...new Set(carriers.map((c) => shortTraceId(traceIdOf(c))).filter((id): id is string => id !== undefined))];
  if (ids.length === 0) return '';
  return ids.length === 1 ? ` (trace ${ids[0]})` : ` (traces ${ids.join(' ')})`;
}

/**
 * " (trace 4bf92f35)" for a log line about an event with this carrier or trace id; "" without
 * one. The same form on every line, so `grep 4bf92f35` shows the whole journey.
 */
export function traceTag(from: Readonly<Carrier> | string | null | undefined): string {
  const short = shortTraceId(typeof from === 'string' || from == null ? from : traceIdOf(from));
  return short ? ` (trace ${short})` : '';
}
