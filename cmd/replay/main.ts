// npm run replay: deliver processed messages again and watch them being skipped.
import { Command } from 'commander';
import { duration, positiveInt, transportChosen, transportMode, withTransport } from '../../internal/cli/args.ts';
import { followServerTransport } from '../../internal/app/transport-mode.ts';
import { createApiClient } from '../../internal/client/api-client.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { purgeDeadLettersOlderThan, redriveDeadLettersAndWait, replayDuplicates } from '../../internal/app/replay.ts';
import { colorEnabled, loadConfig, type TransportMode } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';
import { isUuid } from '../../internal/orders/validate.ts';
import { formatBrokerReplayReport, formatPurgeReport, formatReplayReport } from '../../internal/replay/report.ts';

const options = new Command('replay')
  .description('deliver already-processed messages again, as duplicates, and check they change nothing')
  .option('--count <n>', 'how many of the most recent processed messages', positiveInt, 3)
  .option('--message-id <uuid...>', 'replay these message ids instead')
  .option('--dead-letters', 're-drive dead letters (all, or --message-id ones) into the outbox and deliver them')
  .option('--purge', 'with --dead-letters: delete dead letters older than --older-than instead of re-driving them (asks nothing)')
  .option('--older-than <duration>', 'with --purge: how long ago they died, e.g. 30d, 12h', duration)
  .option('--fresh', 'first place one new order and deliver its event, then replay that (works on an empty database)')
  .option('--product <id>', 'product for --fresh', 'widget')
  .option('--transport <mode>', 'in-process, or nats: republish to JetStream, same and new message id (default: TRANSPORT)', transportMode)
  .option('--url <url>', 'where a running server would answer (default: http://HOST:PORT)')
  .option('--wait-timeout <ms>', "how long to wait for the server's workers", positiveInt, 15_000)
  .option('--json', 'print one JSON result object instead of the summary (logs go to stderr)')
  .parse()
  .opts<{ count: number; messageId?: string[]; deadLetters?: boolean; purge?: boolean; olderThan?: number; fresh?: boolean; product: string; transport?: TransportMode; url?: string; waitTimeout: number; json?: boolean }>();

const chosenConfig = orExit(() => loadConfig(withTransport(process.env, options.transport)), 'replay could not start');
const serverUrl = options.url ?? `http://${chosenConfig.host}:${chosenConfig.port}`;
// Without --transport or TRANSPORT, follow the server that is running (if one is).
const followed = await followServerTransport(chosenConfig, transportChosen(process.env, options.transport), createApiClient(serverUrl), process.env);
const config = followed.config;
if (followed.note) process.stderr.write(`${followed.note}\n`);

for (const id of options.messageId ?? []) {
  if (!isUuid(id)) {
    process.stderr.write(`--message-id ${id} is not a message id (a uuid)\n`);
    process.exit(2);
  }
}

if ((options.purge || options.olderThan !== undefined) && (!options.purge || !options.deadLetters || options.olderThan === undefined || options.messageId)) {
  process.stderr.write('--purge goes with --dead-letters and --older-than <duration> (e.g. --dead-letters --purge --older-than 30d), without --message-id\n');
  process.exit(2);
}

const output = options.json ? process.stderr : process.stdout;
const color = colorEnabled(output);
const logger = createConsoleLogger({ level: config.logLevel, color, stream: output });

if (options.purge) {
  try {
    const result = await purgeDeadLettersOlderThan(config, options.olderThan!, logger);
    process.stdout.write(`${options.json ? JSON.stringify(result, null, 2) : formatPurgeReport(result, color)}\n`);
    process.exit(0);
  } catch (error) {
    exitWithFailure(error, 'purge failed');
  }
}

if (options.deadLetters) {
  try {
    const result = await redriveDeadLettersAndWait(
      config,
      { messageIds: options.messageId ?? [], waitTimeoutMs: options.waitTimeout, serverUrl },
      logger,
    );
    if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    process.exit(result.ok ? 0 : 1);
  } catch (error) {
    exitWithFailure(error, 're-drive failed');
  }
}

try {
  const result = await replayDuplicates(
    config,
    {
      count: options.count,
      messageIds: options.messageId ?? [],
      fresh: Boolean(options.fresh),
      freshProductId: options.product,
      waitTimeoutMs: options.waitTimeout,
      serverUrl,
    },
    logger,
  );
  const report = result.path === 'nats' ? formatBrokerReplayReport(result, color) : formatReplayReport(result, color);
  process.stdout.write(`${options.json ? JSON.stringify(result, null, 2) : report}\n`);
  process.exitCode = result.ok ? 0 : 1;
} catch (error) {
  exitWithFailure(error, 'replay failed');
}
