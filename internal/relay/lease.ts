// A claim's lease as its worker sees it, so the worker is done with every event it started
// before the lease ends. Past that moment another worker may claim the same event and deliver
// it at the same time: into the same lock, if a lock is what made the first one slow, and
// without the backoff a recorded failure would have given it.
//
// Why a deadline rather than extending the lease while the worker works (a heartbeat UPDATE):
// a heartbeat needs a timer and a second connection per worker while the first one waits in a
// lock, and it fails or comes late exactly when the database is slow, which is when deliveries
// are slow too. A deadline checked before each start writes nothing and cannot be late. And it
// lets go of what a stuck worker cannot reach: the rest of its claim goes back to the outbox,
// where another worker delivers what is not stuck, instead of waiting behind one slow event.
// (A process frozen mid-delivery, a GC pause or a stopped VM, outlives either scheme; its late
// delivery is a duplicate that the consumer skips.)

/** The lease the worker must have left to start a delivery: see neededFor(). */
export class LeaseDeadline {
  private constructor(
    private readonly endsAt: number,
    /** The lease one delivery may need, worst case (ms). */
    readonly neededMs: number,
  ) {}

  /**
   * To be called just BEFORE the claim is sent. The database stamps the lease's end with its
   * now() while it runs the claim, so it is later than this, never earlier: measured from here,
   * on this process's monotonic clock, the worker's idea of the end errs on the safe side by
   * the claim's round trip (and wall-clock jumps cannot move it).
   */
  static beforeClaim(leaseMs: number, deliveryTimeoutMs: number): LeaseDeadline {
    return new LeaseDeadline(performance.now() + leaseMs, neededFor(leaseMs, deliveryTimeoutMs));
  }

  leftMs(): number {
    return this.endsAt - performance.now();
  }

  /** Whether a delivery started now ends, even at its slowest, while the lease is still ours. */
  allowsDelivery(): boolean {
    return this.leftMs() >= this.neededMs;
  }
}

/**
 * A delivery is bounded by the workers' statement timeout: the one statement that waits for a
 * lock is ended after it. The margin on top, a quarter of the lease, covers the delivery's other
 * statements, waiting for a pool connection, and recording a failure (retry with backoff) while
 * the lease is still ours. The statement timeout is at most half the lease, so the first
 * delivery of a claim always starts unless the claim itself took a quarter of the lease.
 */
export function neededFor(leaseMs: number, deliveryTimeoutMs: number): number {
  return deliveryTimeoutMs + Math.floor(leaseMs / 4);
}
