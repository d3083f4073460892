// npm start: the Order API with its relay workers.
import { Command } from 'commander';
import { colorEnabled, loadConfig } from '../../internal/config/config.ts';
import { startServer } from '../../internal/app/wiring.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';
import { onShutdownSignal } from '../../internal/app/signals.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';

const options = new Command('server')
  .description('Order API + outbox relay workers (configured by environment; flags override)')
  .option('--port <port>', 'HTTP port (env PORT, default 8080)')
  .option('--workers <n>', 'relay worker loops (env WORKERS, default 5)')
  .parse()
  .opts<{ port?: string; workers?: string }>();

const env = { ...process.env, PORT: options.port ?? process.env.PORT, WORKERS: options.workers ?? process.env.WORKERS };
const config = orExit(() => loadConfig(env), 'could not start');
const logger = createConsoleLogger({ level: config.logLevel, color: colorEnabled(process.stdout) });

try {
  const server = await startServer(config, logger);
  onShutdownSignal(logger, () => server.close());
} catch (error) {
  exitWithFailure(error, 'could not start');
}
