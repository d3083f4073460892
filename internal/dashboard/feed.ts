// The live feed: the steps the logger prints, kept in a small ring buffer for the dashboard.
// The log lines are the narration people already read in the terminal, so the page shows
// exactly those, tagged with what kind of step each one is.
import { speakerColorName, type LogRecord, type SpeakerColor } from '../log/logger.ts';

export type StepKind =
  | 'accepted'
  | 'cancelled'
  | 'claimed'
  | 'applied'
  | 'rejected'
  | 'duplicate'
  | 'delivered'
  | 'retried'
  | 'dead-lettered'
  | 'warning'
  | 'error'
  | 'info';

export interface Step {
  /** Increases by one per step; clients ask for "everything after seq". */
  seq: number;
  /** Wall-clock time as the console prints it (UTC, HH:MM:SS.mmm). */
  time: string;
  level: LogRecord['level'];
  speaker: string;
  color: SpeakerColor;
  message: string;
  kind: StepKind;
}

export interface LiveFeed {
  /** Hand it to teeLogger: every log record becomes a step (debug records are left out). */
  record(record: LogRecord): void;
  /** Steps after `seq`, oldest first, at most `limit` (the newest ones when there are more). */
  since(seq: number, limit: number): Step[];
  /** The seq of the newest step (0 when none). */
  readonly lastSeq: number;
}

export function createLiveFeed(capacity = 500): LiveFeed {
  const steps: Step[] = [];
  let lastSeq = 0;
  return {
    record(record) {
      if (record.level === 'debug') return;
      lastSeq += 1;
      steps.push({
        seq: lastSeq,
        time: new Date().toISOString().slice(11, 23),
        level: record.level,
        speaker: record.speaker,
        color: speakerColorName(record.speaker),
        message: record.message,
        kind: classify(record),
      });
      if (steps.length > capacity) steps.splice(0, steps.length - capacity);
    },
    since(seq, limit) {
      const newer = steps.filter((step) => step.seq > seq);
      return newer.slice(Math.max(0, newer.length - limit));
    },
    get lastSeq() {
      return lastSeq;
    },
  };
}

/** What kind of step a log line narrates; read from the wording the components log. */
export function classify(record: Pick<LogRecord, 'level' | 'speaker' | 'message'>): StepKind {
  const { speaker } = record;
  // A line about an event ends with its short trace id(s) (internal/tracing/context.ts traceTag).
  const message = record.message.replace(/ \(traces? [0-9a-f]{8}(?: [0-9a-f]{8})*\)$/, '');
  if (/dead.?letter/i.test(message)) return 'dead-lettered';
  if (/\bretry in\b/.test(message)) return 'retried';
  if (record.level === 'error') return 'error';
  if (record.level === 'warn') return 'warning';
  if (speaker === 'API' && /\baccepted\b/.test(message)) return 'accepted';
  if (speaker === 'API' && /\bcancelled \(order \+ OrderCancelled/.test(message)) return 'cancelled';
  if (/^claimed \d+ events?$/.test(message)) return 'claimed';
  if (/^delivered and deleted/.test(message)) return 'delivered';
  if (/SKIPPING duplicate/.test(message)) return 'duplicate';
  if (speaker === 'Inventory' && /\(CONFIRMED\)$/.test(message)) return 'applied';
  if (speaker === 'Inventory' && /REJECTED/.test(message)) return 'rejected';
  return 'info';
}
