// npm run relay: outbox relay workers without the API, to scale out next to a server.
import { Command } from 'commander';
import { startRelay } from '../../internal/app/relay.ts';
import { onShutdownSignal } from '../../internal/app/signals.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { colorEnabled, loadConfig } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';

const options = new Command('relay')
  .description('outbox relay workers only, sharing the database with servers and other relays')
  .option('--name <name>', 'this relay\'s name; workers are "<name>/Worker-N" (env RELAY_NAME, default relay-<host>; give each relay on one host its own)')
  .option('--workers <n>', 'relay worker loops (env WORKERS, default 5)')
  .parse()
  .opts<{ name?: string; workers?: string }>();

const env = { ...process.env, RELAY_NAME: options.name ?? process.env.RELAY_NAME, WORKERS: options.workers ?? process.env.WORKERS };
const config = orExit(() => loadConfig(env), 'could not start');
const logger = createConsoleLogger({ level: config.logLevel, color: colorEnabled(process.stdout) });

try {
  const relay = await startRelay(config, logger);
  onShutdownSignal(logger, () => relay.close());
} catch (error) {
  exitWithFailure(error, 'could not start');
}
