import type { Logger } from '../log/logger.ts';

/**
 * First SIGINT/SIGTERM: run `close` (graceful) and exit 0. A second signal forces exit 1,
 * for when something in flight will not finish.
 */
const ECHO_WINDOW_MS = 1_000;

export function onShutdownSignal(logger: Logger, close: () => Promise<void>): void {
  let stopping = false;
  let firstAt = 0;
  const handler = (signal: NodeJS.Signals) => {
    // `npm start` and tsx relay a signal to us that we may also get directly (`kill` on the
    // group), so a repeat within a moment is the same request, not a second Ctrl-C.
    if (stopping && Date.now() - firstAt < ECHO_WINDOW_MS) return;
    if (stopping) {
      logger.warn(`${signal} again: forcing exit`);
      process.exit(1);
    }
    stopping = true;
    firstAt = Date.now();
    logger.info(`${signal}: stopping (finishing in-flight deliveries; press Ctrl-C again to force)`);
    close().then(
      () => {
        logger.info('stopped cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error('error while stopping', error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
