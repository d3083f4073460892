/** Why a sleep ended: its time ran out, or it was woken for a reason its waker gave. */
export type WakeReason = 'timeout' | 'claim' | 'work' | 'stop';

/**
 * Lets idle workers sleep without burning CPU until a timeout or a wake-up, whichever is first.
 * A wake-up that finds nobody asleep is not kept here: whoever wakes workers keeps the reason
 * in its own state, which every awake worker reads before it goes to sleep (see the relay's
 * `unclaimed`). A flag kept here would only wake some later sleeper for nothing.
 */
export class Waker {
  private waiters = new Set<(reason: WakeReason) => void>();

  /** How many are asleep right now. */
  get sleeping(): number {
    return this.waiters.size;
  }

  /** Resolves after `ms` with "timeout", or sooner with the reason it was woken for. */
  sleep(ms: number): Promise<WakeReason> {
    return new Promise((resolve) => {
      const done = (reason: WakeReason) => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(reason);
      };
      const timer = setTimeout(() => done('timeout'), ms);
      this.waiters.add(done);
    });
  }

  /**
   * Wakes one sleeper (the one asleep longest): one new event needs one worker, and waking them
   * all would have every other worker claim nothing and go back to sleep (a thundering herd of
   * empty claims). Returns false when nobody was asleep.
   */
  wakeOne(reason: Exclude<WakeReason, 'timeout'>): boolean {
    const first = this.waiters.values().next();
    if (first.done) return false;
    first.value(reason);
    return true;
  }

  /** Wakes every sleeper now. */
  wake(reason: Exclude<WakeReason, 'timeout'> = 'stop'): void {
    for (const done of [...this.waiters]) done(reason);
  }
}
