// Fault injection for the lessons: deliveries that fail on purpose, and crash points where a
// test can have the process SIGKILLed at the worst possible moment.
import type { CrashAt, CrashPoint } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import { seededRandom, type Random } from './random.ts';

/** Makes a share of deliveries fail, as a flaky downstream would. Adjustable while running. */
export interface FailureInjector {
  failRate(): number;
  setFailRate(rate: number): void;
  /** Throws an InjectedFailure with probability failRate(). */
  maybeFail(what: string): void;
  /** The same draw as maybeFail, returned instead of thrown: the failure to inject, if any. */
  failureFor(what: string): InjectedFailure | undefined;
}

export class InjectedFailure extends Error {
  override name = 'InjectedFailure';
}

export function createFailureInjector(initialRate: number, random: Random = seededRandom(Date.now())): FailureInjector {
  let rate = initialRate;
  const failureFor = (what: string) =>
    rate > 0 && random() < rate ? new InjectedFailure(`injected failure (FAIL_RATE ${rate}) delivering ${what}`) : undefined;
  return {
    failRate: () => rate,
    setFailRate(next) {
      if (!(next >= 0 && next <= 1)) throw new RangeError('fail rate must be from 0 to 1');
      rate = next;
    },
    maybeFail(what) {
      const failure = failureFor(what);
      if (failure) throw failure;
    },
    failureFor,
  };
}

/** Called at each crash point; kills the process at the configured one. */
export type CrashHook = (point: CrashPoint) => void;

export function createCrashHook(crashAt: CrashAt | undefined, kill: () => void, logger: Logger): CrashHook {
  if (!crashAt) return () => {};
  let hits = 0;
  return (point) => {
    if (point !== crashAt.point) return;
    hits += 1;
    if (hits !== crashAt.hit) return;
    logger.child('Crash').warn(`CRASH_AT ${point}:${crashAt.hit} reached: SIGKILL now`);
    kill();
  };
}
