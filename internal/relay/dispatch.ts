// The workers' local hand-out queue (per-message mode). A woken worker claims a batch, but it
// does not deliver the batch alone, one event after another: the last event would wait for
// nine consumer transactions while sibling workers sit idle. It puts the claim's events here
// instead, and every free worker of this process, the claimer included, takes the next one.
//
// Nothing about the lease changes. Every event here still belongs to the claim that leased it:
// whoever delivers it checks that claim's LeaseDeadline before starting and uses that claim's
// token for complete, retry, dead-letter and release. What the lease cannot cover is handed
// back, as the claimer alone would have done. The claim's delivered events are deleted in one
// statement once its last event has settled, so draining a backlog costs no extra round trips.
import type { OutboxEvent } from '../outbox/outbox.ts';
import type { LeaseDeadline } from './lease.ts';

/** One claim whose events may be delivered by several workers of this process. */
export class SharedClaim {
  /** Ids the consumer committed, to delete with this claim's token once every unit settled. */
  readonly delivered: string[] = [];
  readonly outcomes: Record<string, number> = {};
  /** The delivered events' trace contexts, for the log line that deletes them. */
  readonly traces: Array<Record<string, string> | undefined> = [];
  private open: number;
  private resolveFinished!: () => void;
  private rejectFinished!: (error: unknown) => void;
  /** Settles once the last unit settled and the delivered events were deleted (or that failed). */
  readonly finished: Promise<void>;

  constructor(
    /** The worker that claimed it: its name is on the rows (locked_by) and on the summary line. */
    readonly claimer: string,
    readonly token: string,
    readonly lease: LeaseDeadline,
    units: number,
  ) {
    this.open = units;
    this.finished = new Promise<void>((resolve, reject) => {
      this.resolveFinished = resolve;
      this.rejectFinished = reject;
    });
    this.finished.catch(() => undefined); // whoever finalizes reports the error; waiting on it is optional
  }

  recordDelivered(id: string, outcome: string, headers?: Record<string, string>): void {
    this.delivered.push(id);
    this.traces.push(headers);
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
  }

  /** Marks `count` units settled; true when they were the last (the caller then finalizes). */
  settle(count: number): boolean {
    this.open -= count;
    return this.open === 0;
  }

  /** Runs the claim's final step once and passes its result on to whoever waits for the claim. */
  async finalize(step: () => Promise<void>): Promise<void> {
    try {
      await step();
      this.resolveFinished();
    } catch (error) {
      this.rejectFinished(error);
      throw error;
    }
  }
}

/**
 * What one worker delivers in one go: a claim's events of one aggregate, in claim (id) order.
 * Events of one aggregate are never spread over several workers, so they are never delivered
 * at the same time or out of order: the same as when one worker delivered the whole claim.
 */
export interface DispatchUnit {
  claim: SharedClaim;
  events: OutboxEvent[];
}

/** A claim's events (in id order) as one group per aggregate, ordered by each group's first event. */
export function groupByAggregate(events: readonly OutboxEvent[]): OutboxEvent[][] {
  const byAggregate = new Map<string, OutboxEvent[]>();
  for (const event of events) {
    const group = byAggregate.get(event.aggregateId);
    if (group) group.push(event);
    else byAggregate.set(event.aggregateId, [event]);
  }
  return [...byAggregate.values()];
}

/** First in, first out: the oldest claim's events are started first. */
export class DispatchQueue {
  private units: DispatchUnit[] = [];

  get size(): number {
    return this.units.length;
  }

  push(units: readonly DispatchUnit[]): void {
    this.units.push(...units);
  }

  take(): DispatchUnit | undefined {
    return this.units.shift();
  }

  /** The next waiting unit of `claim`, if any. */
  takeOf(claim: SharedClaim): DispatchUnit | undefined {
    const index = this.units.findIndex((u) => u.claim === claim);
    return index === -1 ? undefined : this.units.splice(index, 1)[0];
  }

  /** Removes and returns every waiting unit of `claim` (its lease has no room left for them). */
  takeAllOf(claim: SharedClaim): DispatchUnit[] {
    const taken = this.units.filter((u) => u.claim === claim);
    this.units = this.units.filter((u) => u.claim !== claim);
    return taken;
  }
}
