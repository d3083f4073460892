// Flag parsers shared by the command-line entry points: a bad value stops commander with a
// clear message instead of reaching internal/ as NaN.
import { InvalidArgumentError } from 'commander';
import type { TransportMode } from '../config/config.ts';
import { DURATION_FORMAT, parseDuration } from '../config/duration.ts';

export function intAtLeast(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    // Number() alone would take "0x5" and "1e3": only plain decimal digits are meant.
    if (!/^\d{1,16}$/.test(value.trim()) || n < min) throw new InvalidArgumentError(`must be a decimal integer ≥ ${min}`);
    return n;
  };
}

export const positiveInt = intAtLeast(1);

export function fraction(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be a number from 0 to 1');
  return n;
}

/** "30d" → milliseconds. */
export function duration(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined) throw new InvalidArgumentError(`must be ${DURATION_FORMAT}`);
  return ms;
}

/** `--transport in-process|nats`: overrides TRANSPORT for this command (see withTransport). */
export function transportMode(value: string): TransportMode {
  if (value !== 'in-process' && value !== 'nats') throw new InvalidArgumentError('must be in-process or nats');
  return value;
}

/** The environment with TRANSPORT set from `--transport` when given, so loadConfig validates it as usual. */
export function withTransport(env: NodeJS.ProcessEnv, flag: TransportMode | undefined): NodeJS.ProcessEnv {
  return flag === undefined ? env : { ...env, TRANSPORT: flag };
}

/** Whether the user chose a transport (flag or TRANSPORT); if not, a tool may ask the server. */
export function transportChosen(env: NodeJS.ProcessEnv, flag: TransportMode | undefined): boolean {
  return flag !== undefined || Boolean(env.TRANSPORT?.trim());
}
