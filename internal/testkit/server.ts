// The real server (API, workers, dashboard) in this test process, on a test database.
import { startServer, type RunningServer, type ServerOptions } from '../app/wiring.ts';
import { loadConfig, type Config } from '../config/config.ts';
import { createSilentLogger, type Logger } from '../log/logger.ts';
import type { TestDatabase } from './database.ts';

/**
 * Five workers polling every 50 ms on a free port, silent; `overrides` change any of it.
 * A request may wait 30 s for a connection: a busy CI machine is slow, not broken.
 */
export function startTestServer(
  db: TestDatabase, overrides: Partial<Config> = {}, options: ServerOptions = {}, logger: Logger = createSilentLogger(),
): Promise<RunningServer> {
  const config = loadConfig({}, {
    databaseUrl: db.url, port: 0, workers: 5, pollIntervalMs: 50, logLevel: 'silent', connectionTimeoutMs: 30_000,
    ...overrides,
  });
  return startServer(config, logger, options);
}
