// The inventory service's own small HTTP face (INVENTORY_PORT): health, its numbers (/stats)
// and its Prometheus metrics (/metrics). It has no write routes: its only input is the ORDERS
// stream.
import express from 'express';
import { AppError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import type { InventoryMetrics } from '../metrics/inventory-metrics.ts';
import type { InventoryStats } from '../stats/inventory.ts';
import type { Readiness } from './app.ts';
import { errorHandler } from './errors.ts';
import { hostGuard, type ServerNames } from './guard.ts';

export interface InventoryHttpDeps {
  /** Its database's numbers (shared, briefly cached read). */
  /** `freshFrom` (epoch ms): ?fresh=1 asks for numbers read after the request arrived. */
  stats: (freshFrom?: number) => Promise<InventoryStats>;
  metrics: Pick<InventoryMetrics, 'scrape' | 'contentType'>;
  logger: Logger;
  serverNames: ServerNames;
  readiness: () => Promise<Readiness>;
}

export function createInventoryHttpApp(deps: InventoryHttpDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(hostGuard(deps.serverNames, deps.logger.child('HTTP')));
  app.get('/health/live', (_req, res) => {
    res.json({ live: true });
  });
  app.get('/health/ready', async (_req, res) => {
    const readiness = await deps.readiness();
    res.status(readiness.ready ? 200 : 503).json(readiness);
  });
  app.get('/stats', async (req, res) => {
    // ?fresh=1: numbers read after this request arrived (a tool checking what it just did).
    res.json(await deps.stats(req.query.fresh === '1' ? Date.now() : undefined));
  });
  app.get('/metrics', async (_req, res) => {
    const text = await deps.metrics.scrape();
    res.type(deps.metrics.contentType).send(text);
  });
  app.use((req) => {
    throw new AppError('NOT_FOUND', `no route ${req.method} ${req.path} on the inventory service`);
  });
  app.use(errorHandler(deps.logger));
  return app;
}
