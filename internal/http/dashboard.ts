// The live dashboard's routes: the page (static files, no build step), its push stream
// (Server-Sent Events) and the buttons' endpoints, which answer only loopback clients unless
// the server is told otherwise: they place orders and replay messages on a live system.
// (Host and Origin are checked for every route in app.ts; see guard.ts.)
import path from 'node:path';
import express, { type RequestHandler, type Router } from 'express';
import type { LiveUpdates } from '../dashboard/live.ts';
import type { Lessons } from '../dashboard/lessons.ts';
import { AppError } from '../errors/errors.ts';
import { requireJson } from './guard.ts';

/** Fault injection as the server may offer it: the share of deliveries made to fail. */
export interface Faults {
  setFailRate(rate: number): void;
  failRate(): number;
}

export interface DashboardDeps {
  live?: LiveUpdates;
  lessons?: Lessons;
  faults?: Faults;
  /** Let the buttons' endpoints answer clients that are not on this machine. */
  remoteActions?: boolean;
}

const PAGE_DIR = path.join(import.meta.dirname, 'dashboard');
export const ACTION_LIMITS = { orders: { default: 50, max: 1000 }, replays: { default: 3, max: 100 } } as const;

export function dashboardRoutes(deps: DashboardDeps, methodNotAllowed: (allowed: string) => RequestHandler): Router {
  const router = express.Router();
  const json = express.json({ limit: '1kb' });
  const actionsOnly = actionGuard(deps.remoteActions ?? false);

  router
    .route('/')
    .get((_req, res) => res.sendFile(path.join(PAGE_DIR, 'index.html')))
    .all(methodNotAllowed('GET'));
  router.use(
    '/dashboard/assets',
    (_req, res, next) => {
      res.locals.route = '/dashboard/assets';
      next();
    },
    express.static(PAGE_DIR, { index: false, fallthrough: true }),
  );

  router
    .route('/dashboard/capabilities')
    .get((req, res) => {
      res.json({
        live: deps.live !== undefined,
        lessons: deps.lessons !== undefined,
        faults: deps.faults !== undefined,
        ...(deps.faults ? { failRate: deps.faults.failRate() } : {}),
        // Whether this client may press the buttons (same rule as the endpoints).
        actionsAllowed: deps.remoteActions === true || isLoopback(req.socket.remoteAddress),
      });
    })
    .all(methodNotAllowed('GET'));

  if (deps.live) {
    const live = deps.live;
    router
      .route('/dashboard/events')
      .get((req, res) => {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          'x-accel-buffering': 'no',
        });
        res.write('retry: 2000\n\n');
        const stop = live.watch({
          send: (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`),
          end: () => res.end(),
        });
        req.on('close', stop);
      })
      .all(methodNotAllowed('GET'));
  }

  if (deps.lessons) {
    const lessons = deps.lessons;
    router
      .route('/dashboard/orders')
      .post(actionsOnly, requireJson, json, async (req, res) => {
        const count = countFrom(req.body, ACTION_LIMITS.orders);
        res.json(await lessons.placeOrders(count));
      })
      .all(methodNotAllowed('POST'));
    router
      .route('/dashboard/replay')
      .post(actionsOnly, requireJson, json, async (req, res) => {
        const count = countFrom(req.body, ACTION_LIMITS.replays);
        res.json(await lessons.replayDuplicates(count));
      })
      .all(methodNotAllowed('POST'));
  }

  if (deps.faults) {
    const faults = deps.faults;
    router
      .route('/dashboard/faults')
      .get((_req, res) => {
        res.json({ failRate: faults.failRate() });
      })
      .post(actionsOnly, requireJson, json, (req, res) => {
        const rate = (req.body as { failRate?: unknown } | undefined)?.failRate;
        if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate > 1) {
          throw new AppError('VALIDATION_FAILED', 'the fault setting is not valid', { failRate: 'required: a number from 0 to 1' });
        }
        faults.setFailRate(rate);
        res.json({ failRate: faults.failRate() });
      })
      .all(methodNotAllowed('GET, POST'));
  }
  return router;
}

/** 127.0.0.0/8 and ::1, also as IPv4-mapped IPv6. The socket's address, never a header. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

function actionGuard(remoteActions: boolean): RequestHandler {
  return (req, _res, next) => {
    if (remoteActions || isLoopback(req.socket.remoteAddress)) {
      next();
      return;
    }
    next(new AppError('FORBIDDEN', 'the dashboard buttons work only from the server’s own machine (DASHBOARD_REMOTE_ACTIONS=1 allows others)'));
  };
}

function countFrom(body: unknown, limits: { default: number; max: number }): number {
  const value = (body as { count?: unknown } | undefined)?.count;
  if (value === undefined) return limits.default;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > limits.max) {
    throw new AppError('VALIDATION_FAILED', 'the request is not valid', { count: `an integer from 1 to ${limits.max}` });
  }
  return value;
}
