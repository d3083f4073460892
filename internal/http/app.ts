// The Order API's routes. Nothing outside internal/http knows about Express.
import type { Tracer } from '@opentelemetry/api';
import express, { type RequestHandler } from 'express';
import type { Pool } from '../db/pool.ts';
import { AppError } from '../errors/errors.ts';
import { listProducts } from '../inventory/stock.ts';
import type { Logger } from '../log/logger.ts';
import { createMetrics, type Metrics } from '../metrics/metrics.ts';
import { cancelOrder } from '../orders/cancel.ts';
import { getOrder, getOrders, placeOrder, type Order } from '../orders/orders.ts';
import { validateOrderIds, validateOrderInput } from '../orders/validate.ts';
import { validateIdempotencyKey } from '../orders/idempotency.ts';
import type { CrashHook } from '../faults/faults.ts';
import type { Wakeup } from '../outbox/wakeup.ts';
import { createStatsReader, type StatsReader } from '../stats/reader.ts';
import { traceTag } from '../tracing/context.ts';
import { traceCreate } from '../tracing/messaging.ts';
import { noTracing } from '../tracing/tracing.ts';
import { dashboardRoutes, type DashboardDeps } from './dashboard.ts';
import { errorHandler } from './errors.ts';
import { createPacer } from './pacer.ts';
import { requestContext, traceRequest } from './tracing.ts';
import { hostGuard, originGuard, requireJson, type ServerNames } from './guard.ts';

export interface HttpDeps extends DashboardDeps {
  pool: Pool;
  logger: Logger;
  /** Called after an order's transaction committed, e.g. to nudge idle workers. */
  /** Tells the workers of each new order once it committed (WAKEUP); none: announced in the transaction. */
  wakeup?: Pick<Wakeup, 'notifyInTransaction' | 'committed'>;
  /** Fault injection: crash points inside request handling. */
  crash?: CrashHook;
  /** Counts requests and renders GET /metrics; a fresh one when not given. */
  metrics?: Metrics;
  /** IDEMPOTENCY_KEY_TTL: after it, an Idempotency-Key may be used for a new order (default 24 h). */
  idempotencyKeyTtlMs?: number;
  /** Names besides the loopback ones that requests may use in Host (guard.ts serverNames). */
  serverNames?: ServerNames;
  /** Reads /stats (shared, cached); one on `pool` when not given. */
  reader?: StatsReader;
  /** GET /health/ready: whether this process can do its work; "database answers" when not given. */
  readiness?: () => Promise<Readiness>;
  /** Spans for POST /orders and its event (internal/tracing); none when not given. */
  tracer?: Tracer;
}

export interface Readiness {
  ready: boolean;
  /** Each part and its state, e.g. {database: "up", listener: "connected", relay: "running"}. */
  checks: Record<string, string>;
}

export const BODY_LIMIT = '4kb';

export function createHttpApp(deps: HttpDeps): express.Express {
  const log = deps.logger.child('API');
  const tracer = deps.tracer ?? noTracing().tracer;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const reader = deps.reader ?? createStatsReader(deps.pool);
  const metrics = deps.metrics ?? createMetrics(reader);
  const readersTurn = createPacer(); // GET /stats and /metrics answer one per event-loop turn (pacer.ts)
  const readiness = deps.readiness ?? (async () => {
    const up = await deps.pool.query('SELECT 1').then(() => true, () => false);
    return { ready: up, checks: { database: up ? 'up' : 'down' } };
  });
  app.use((req, res, next) => {
    // Labelled by route pattern (never the raw path, which would make a series per order id).
    res.on('close', () => metrics.observeHttpRequest(req.method, routeOf(req, res), res.statusCode));
    next();
  });
  // Before every route: a page on another site may neither read this server under a name it
  // controls nor change anything here (guard.ts says why and how).
  app.use(hostGuard(deps.serverNames ?? new Set(), log), originGuard(log));

  const json = express.json({ limit: BODY_LIMIT, strict: false }); // any JSON value parses; the validator explains what is wrong with it

  app
    .route('/orders')
    .post(traceRequest(tracer, '/orders'), requireJson, json, async (req, res) => {
      const input = validateOrderInput(req.body);
      const idempotencyKey = validateIdempotencyKey(req.get('idempotency-key'));
      // The event is stored with this span's context, in the order's own transaction.
      const placed = await traceCreate(tracer, requestContext(req, res), 'OrderCreated', async (trace) => {
        const result = await placeOrder(deps.pool, input, {
          idempotencyKey, idempotencyKeyTtlMs: deps.idempotencyKeyTtlMs, crash: deps.crash, wakeup: deps.wakeup, trace,
        });
        return Object.assign(result, { messageId: result.replayed ? undefined : result.messageId });
      });
      const { order } = placed;
      if (placed.replayed) {
        // Same key, same body: the client is retrying. Same answer, nothing new written.
        log.info(`order ${order.id.slice(0, 8)}… returned again for its Idempotency-Key (no new order, no new event)${traceTag(order.traceId)}`);
        res.setHeader('Idempotent-Replayed', 'true');
      } else {
        log.info(`order ${order.id.slice(0, 8)}… accepted: ${order.quantity} × ${order.productId} (order + OrderCreated event in one transaction)${traceTag(order.traceId)}`);
      }
      res.status(201).location(`/orders/${order.id}`).json(present(order));
    })
    // Many orders at once, for clients that track a batch (the stress test).
    .get(async (req, res) => {
      const orders = await getOrders(deps.pool, validateOrderIds(req.query.ids));
      res.json({ orders: orders.map(present) });
    })
    .all(methodNotAllowed('GET, POST'));

  app
    .route('/orders/:id')
    .get(async (req, res) => {
      res.json(present(await getOrder(deps.pool, req.params.id)));
    })
    .all(methodNotAllowed('GET'));

  app
    .route('/orders/:id/cancel')
    // Same guards as POST /orders (an empty body is sent as {}): a page on another site must
    // not cancel orders either.
    .post(traceRequest(tracer, '/orders/:id/cancel'), requireJson, json, async (req, res) => {
      if (req.body !== undefined && !isEmptyObject(req.body)) {
        throw new AppError('VALIDATION_FAILED', 'a cancellation takes no body: send {} or nothing', { body: 'must be {} or empty' });
      }
      const idempotencyKey = validateIdempotencyKey(req.get('idempotency-key'));
      // The OrderCancelled event is stored with this request's trace (the order keeps its own).
      let traceId: string | undefined;
      const result = await traceCreate(tracer, requestContext(req, res), 'OrderCancelled', (trace) => {
        traceId = trace.traceId;
        return cancelOrder(deps.pool, req.params.id, { idempotencyKey, idempotencyKeyTtlMs: deps.idempotencyKeyTtlMs, wakeup: deps.wakeup, trace });
      }, (r) => (r.outcome === 'replayed' ? 'an earlier request with the same Idempotency-Key cancelled this order' : 'the order was already CANCELLED'));
      const { order } = result;
      const short = `order ${order.id.slice(0, 8)}…`;
      if (result.outcome === 'cancelled') {
        log.info(`${short} cancelled (order + OrderCancelled event #${result.sequence} in one transaction)${traceTag(traceId)}`);
      } else if (result.outcome === 'replayed') {
        log.info(`${short} returned again for its Idempotency-Key (already cancelled by that request, nothing written)${traceTag(traceId)}`);
        res.setHeader('Idempotent-Replayed', 'true');
      } else {
        log.info(`${short} was already cancelled (nothing written)${traceTag(traceId)}`);
      }
      res.status(200).json(present(order));
    })
    .all(methodNotAllowed('POST'));

  app
    .route('/products')
    .get(async (_req, res) => {
      res.json({ products: await listProducts(deps.pool) });
    })
    .all(methodNotAllowed('GET'));

  app
    .route('/stats')
    // ?fresh=1: numbers read after this request arrived (a tool checking what it just did);
    // still one read at a time, on the readers' pool. Without it: at most STATS_CACHE_MS old.
    .get(async (req, res) => {
      const stats = await reader.read(req.query.fresh === '1' ? Date.now() : undefined);
      await readersTurn();
      res.json(stats);
    })
    .all(methodNotAllowed('GET'));

  app
    .route('/metrics')
    .get(async (_req, res) => {
      const text = await metrics.scrape();
      await readersTurn();
      res.type(metrics.contentType).send(text);
    })
    .all(methodNotAllowed('GET'));

  app.use(dashboardRoutes(deps, methodNotAllowed));

  app
    .route('/health')
    .get(async (_req, res) => {
      try {
        await deps.pool.query('SELECT 1');
        res.json({ status: 'ok', database: 'up' });
      } catch {
        res.status(503).json({ status: 'unavailable', database: 'down' });
      }
    })
    .all(methodNotAllowed('GET'));

  // For orchestrators: "live" restarts a process that answers nothing; "ready" sends traffic
  // only to one that can do its work. /health above stays what it always was.
  app
    .route('/health/live')
    .get((_req, res) => {
      res.json({ status: 'ok' });
    })
    .all(methodNotAllowed('GET'));

  app
    .route('/health/ready')
    .get(async (_req, res) => {
      const { ready, checks } = await readiness();
      res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', ...checks });
    })
    .all(methodNotAllowed('GET'));

  app.use((req, _res, next) => next(new AppError('NOT_FOUND', `no route for ${req.method} ${req.path}`)));
  app.use(errorHandler(log));
  return app;
}

function methodNotAllowed(allowed: string): RequestHandler {
  return (req, res, next) => {
    res.setHeader('Allow', allowed);
    next(new AppError('METHOD_NOT_ALLOWED', `${req.method} is not allowed here; use ${allowed}`));
  };
}

function routeOf(req: express.Request, res: express.Response): string {
  const pattern = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof pattern === 'string') return pattern;
  return typeof res.locals.route === 'string' ? res.locals.route : 'unmatched';
}

function present(order: Order) {
  return {
    id: order.id,
    productId: order.productId,
    quantity: order.quantity,
    userId: order.userId,
    status: order.status,
    rejectReason: order.rejectReason,
    traceId: order.traceId,
    createdAt: order.createdAt.toISOString(),
    updatedAt: order.updatedAt.toISOString(),
    cancelledAt: order.cancelledAt?.toISOString() ?? null,
  };
}

function isEmptyObject(body: unknown): boolean {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && Object.keys(body).length === 0;
}
