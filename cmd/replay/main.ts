// npm run replay: deliver processed messages again and watch them being skipped.
import { Command } from 'commander';
import { positiveInt } from '../../internal/cli/args.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { redriveDeadLettersAndWait, replayDuplicates } from '../../internal/app/replay.ts';
import { colorEnabled, loadConfig } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';
import { isUuid } from '../../internal/orders/validate.ts';
import { formatReplayReport } from '../../internal/replay/report.ts';

const config = orExit(() => loadConfig(), 'replay could not start');
const options = new Command('replay')
  .description('deliver already-processed messages again, as duplicates, and check they change nothing')
  .option('--count <n>', 'how many of the most recent processed messages', positiveInt, 3)
  .option('--message-id <uuid...>', 'replay these message ids instead')
  .option('--dead-letters', 're-drive dead letters (all, or --message-id ones) into the outbox and deliver them')
  .option('--fresh', 'first place one new order and deliver its event, then replay that (works on an empty database)')
  .option('--product <id>', 'product for --fresh', 'widget')
  .option('--url <url>', 'where a running server would answer', `http://${config.host}:${config.port}`)
  .option('--wait-timeout <ms>', "how long to wait for the server's workers", positiveInt, 15_000)
  .option('--json', 'print one JSON result object instead of the summary (logs go to stderr)')
  .parse()
  .opts<{ count: number; messageId?: string[]; deadLetters?: boolean; fresh?: boolean; product: string; url: string; waitTimeout: number; json?: boolean }>();

for (const id of options.messageId ?? []) {
  if (!isUuid(id)) {
    process.stderr.write(`--message-id ${id} is not a message id (a uuid)\n`);
    process.exit(2);
  }
}

const output = options.json ? process.stderr : process.stdout;
const color = colorEnabled(output);
const logger = createConsoleLogger({ level: config.logLevel, color, stream: output });

if (options.deadLetters) {
  try {
    const result = await redriveDeadLettersAndWait(
      config,
      { messageIds: options.messageId ?? [], waitTimeoutMs: options.waitTimeout, serverUrl: options.url },
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
      serverUrl: options.url,
    },
    logger,
  );
  process.stdout.write(`${options.json ? JSON.stringify(result, null, 2) : formatReplayReport(result, color)}\n`);
  process.exitCode = result.ok ? 0 : 1;
} catch (error) {
  exitWithFailure(error, 'replay failed');
}
