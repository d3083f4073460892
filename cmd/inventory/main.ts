// npm run inventory: the inventory service (TRANSPORT=nats), with its own database and outbox.
import { Command } from 'commander';
import { startInventoryService } from '../../internal/app/inventory-service.ts';
import { onShutdownSignal } from '../../internal/app/signals.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { colorEnabled, ConfigError, loadConfig } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';

const options = new Command('inventory')
  .description('inventory service: consumes OrderCreated from NATS, replies StockReserved / StockRejected (needs TRANSPORT=nats)')
  .option('--port <port>', 'HTTP port for health and stats (env INVENTORY_PORT, default 8081)')
  .option('--workers <n>', 'message handlers and reply relay workers (env WORKERS, default 5)')
  .parse()
  .opts<{ port?: string; workers?: string }>();

const env = {
  ...process.env,
  INVENTORY_PORT: options.port ?? process.env.INVENTORY_PORT,
  WORKERS: options.workers ?? process.env.WORKERS,
};
const config = orExit(() => {
  const loaded = loadConfig(env);
  if (loaded.transport !== 'nats') {
    throw new ConfigError('the inventory service runs only with TRANSPORT=nats (in-process, the server applies the stock itself)');
  }
  return loaded;
}, 'could not start');
const logger = createConsoleLogger({ level: config.logLevel, color: colorEnabled(process.stdout) });

try {
  const service = await startInventoryService(config, logger);
  onShutdownSignal(logger, () => service.close());
} catch (error) {
  exitWithFailure(error, 'could not start');
}
