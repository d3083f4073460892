// The one place where a command's failure becomes what the user sees: one line on stderr and
// an exit code. Expected failures (bad configuration, port in use, an unreachable database, a
// refusal) get no stack trace; anything else is a bug, and its stack is the bug report.
import { ConfigError } from '../config/config.ts';
import { isDatabaseUnavailable, StartupError } from '../errors/errors.ts';

/** Exit codes: 1 = could not do it, 2 = how it was asked (bad configuration, missing --yes). */
export interface Failure {
  exitCode: 1 | 2;
  /** What to print: one line for an expected failure, followed by the stack for a bug. */
  text: string;
}

export function describeFailure(error: unknown, doing: string): Failure {
  if (error instanceof ConfigError) return { exitCode: 2, text: error.message };
  if (error instanceof StartupError) {
    // A missing --yes is about how the command was run; its message names the command already.
    if (error.code === 'CONFIRMATION_REQUIRED') return { exitCode: 2, text: error.message };
    return { exitCode: 1, text: `${doing}: ${error.message}` };
  }
  if (isDatabaseUnavailable(error)) {
    return { exitCode: 1, text: `${doing}: the database is unreachable or unavailable (${oneLine(error)})` };
  }
  // PostgreSQL said no (wrong password, no such database…): its message is the explanation.
  const sqlState = (error as { code?: unknown } | undefined)?.code;
  if (error instanceof Error && typeof sqlState === 'string' && /^[0-9A-Z]{5}$/.test(sqlState)) {
    return { exitCode: 1, text: `${doing}: the database said: ${oneLine(error)}` };
  }
  const stack = error instanceof Error && error.stack ? `\n${error.stack}` : '';
  return { exitCode: 1, text: `${doing}: ${oneLine(error)}${stack}` };
}

/** Prints the failure and ends the process with its exit code. */
export function exitWithFailure(error: unknown, doing: string): never {
  const { exitCode, text } = describeFailure(error, doing);
  process.stderr.write(`${text}\n`);
  process.exit(exitCode);
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.trim() || String(error);
}

/** `make()`, or the failure printed and the process ended (for loading configuration). */
export function orExit<T>(make: () => T, doing: string): T {
  try {
    return make();
  } catch (error) {
    exitWithFailure(error, doing);
  }
}
