import type { Logger } from '../log/logger.ts';

/**
 * First SIGINT/SIGTERM: run `close` (graceful) and exit 0. A second signal forces exit 1,
 * for when something in flight will not finish.
 */
export function onShutdownSignal(logger: Logger, close: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn(`${signal} again: forcing exit`);
      process.exit(1);
    }
    stopping = true;
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
