/** Lets idle workers sleep without burning CPU until a timeout or a nudge, whichever is first. */
export class Waker {
  private waiters = new Set<() => void>();

  /** Resolves after `ms`, or sooner when `wake()` is called. */
  sleep(ms: number): Promise<void> {
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

  /** Wakes every sleeper now. */
  wake(): void {
    for (const done of [...this.waiters]) done();
  }
}
