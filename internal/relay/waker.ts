/** Lets idle workers sleep without burning CPU until a timeout or a nudge, whichever is first. */
export class Waker {
  private waiters = new Set<() => void>();
  // A nudge that found nobody asleep (every worker was between "claimed nothing" and sleep())
  // is kept for the next sleeper, or that worker would sleep through the event it announced.
  private missed = false;

  /** Resolves after `ms`, or sooner when woken; at once if a nudge arrived while nobody slept. */
  sleep(ms: number): Promise<void> {
    if (this.missed) {
      this.missed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /**
   * Wakes one sleeper: one new event needs one worker, and waking them all would have every
   * other worker claim nothing and go back to sleep (a thundering herd of empty claims).
   */
  wakeOne(): void {
    const first = this.waiters.values().next();
    if (first.done) this.missed = true;
    else first.value();
  }

  /** Wakes every sleeper now. */
  wake(): void {
    for (const done of [...this.waiters]) done();
  }
}
