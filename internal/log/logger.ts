// Logs are part of the lesson: one line per step, prefixed by who speaks.
import { Chalk, type ChalkInstance } from 'chalk';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string, cause?: unknown): void;
  /** A logger that speaks as `speaker`, e.g. "Worker-3" prints as "[Worker-3]". */
  child(speaker: string): Logger;
}

export interface LogRecord {
  level: Exclude<LogLevel, 'silent'>;
  speaker: string;
  message: string;
}

interface Sink {
  write(record: LogRecord, cause?: unknown): void;
}

export interface ConsoleLoggerOptions {
  level: LogLevel;
  color: boolean;
  stream?: NodeJS.WritableStream;
  speaker?: string;
}

/** The logger people watch: colored by speaker, with a wall-clock time. */
export function createConsoleLogger(options: ConsoleLoggerOptions): Logger {
  const chalk = new Chalk({ level: options.color ? 2 : 0 });
  const stream = options.stream ?? process.stdout;
  const sink: Sink = {
    write(record, cause) {
      const time = chalk.gray(new Date().toISOString().slice(11, 23));
      const speaker = speakerColor(chalk, record.speaker)(`[${record.speaker}]`);
      const text =
        record.level === 'error' ? chalk.red(record.message)
        : record.level === 'warn' ? chalk.yellow(record.message)
        : record.level === 'debug' ? chalk.gray(record.message)
        : record.message;
      const detail = cause === undefined ? '' : ` ${chalk.gray(describeCause(cause))}`;
      stream.write(`${time} ${speaker} ${text}${detail}\n`);
    },
  };
  return new SinkLogger(sink, RANK[options.level], options.speaker ?? 'App');
}

/** A logger that says nothing, for tests and for `--json` runs. */
export function createSilentLogger(): Logger {
  return new SinkLogger({ write() {} }, RANK.silent, 'App');
}

/**
 * `logger`, and every record also handed to `listener`, whatever the level: the live dashboard
 * shows the steps even when the console is quiet (LOG_LEVEL=warn).
 */
export function teeLogger(logger: Logger, listener: (record: LogRecord) => void, speaker = 'App'): Logger {
  const tell = (level: LogRecord['level'], message: string) => listener({ level, speaker, message });
  return {
    debug(message) {
      logger.debug(message);
      tell('debug', message);
    },
    info(message) {
      logger.info(message);
      tell('info', message);
    },
    warn(message) {
      logger.warn(message);
      tell('warn', message);
    },
    error(message, cause) {
      logger.error(message, cause);
      tell('error', message);
    },
    child: (name) => teeLogger(logger.child(name), listener, name),
  };
}

/** A logger that keeps every record, so tests can assert on what was said. */
export function createMemoryLogger(level: LogLevel = 'debug'): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const logger = new SinkLogger({ write: (record) => records.push(record) }, RANK[level], 'App');
  return Object.assign(logger, { records });
}

class SinkLogger implements Logger {
  constructor(
    private readonly sink: Sink,
    private readonly threshold: number,
    private readonly speaker: string,
  ) {}

  debug(message: string): void {
    this.emit('debug', message);
  }
  info(message: string): void {
    this.emit('info', message);
  }
  warn(message: string): void {
    this.emit('warn', message);
  }
  error(message: string, cause?: unknown): void {
    this.emit('error', message, cause);
  }
  child(speaker: string): Logger {
    return new SinkLogger(this.sink, this.threshold, speaker);
  }

  private emit(level: LogRecord['level'], message: string, cause?: unknown): void {
    if (RANK[level] < this.threshold) return;
    this.sink.write({ level, speaker: this.speaker, message }, cause);
  }
}

const WORKER_COLORS = ['green', 'blue', 'yellow', 'magenta', 'cyan', 'greenBright', 'blueBright'] as const;

export type SpeakerColor = (typeof WORKER_COLORS)[number] | 'magenta' | 'gray' | 'white';

/** The color a speaker's prefix has in the terminal; the dashboard's feed uses the same. */
export function speakerColorName(speaker: string): SpeakerColor {
  const worker = /(?:^|\/)Worker-(\d+)$/.exec(speaker); // "Worker-3", "relay-2/Worker-3"
  if (worker) return WORKER_COLORS[Number(worker[1]) % WORKER_COLORS.length]!;
  if (speaker === 'API') return 'cyan';
  if (speaker === 'Inventory') return 'magenta';
  if (speaker === 'DB' || speaker === 'Listener') return 'gray';
  return 'white';
}

function speakerColor(chalk: ChalkInstance, speaker: string): ChalkInstance {
  return chalk[speakerColorName(speaker)].bold;
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) return cause.stack ?? cause.message;
  return String(cause);
}
