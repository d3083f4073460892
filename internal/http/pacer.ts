// Readers take turns with everyone else. Node answers requests on one thread: forty clients
// looping on GET /stats, each answer served from the cache in microseconds, would take most
// of that thread (thousands of answers a second) and an order's request would wait behind
// them. So waiting readers are answered one per turn of the event loop: between two answers
// the loop goes back to its I/O, where the orders' requests and the database's replies are.
// Alone, a reader waits one turn (well under a millisecond); the readers together slow down,
// the writers do not.

/** Resolves when it is the caller's turn: one caller per turn of the event loop, in arrival order. */
export type Pacer = () => Promise<void>;

export function createPacer(): Pacer {
  let last: Promise<void> = Promise.resolve();
  return () => {
    const turn = last.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    last = turn;
    return turn;
  };
}
