// Who answers on a TCP port? A NATS server greets every client with one line,
// `INFO {json}\r\n`, before the client says anything: that line tells a NATS server from
// anything else, and its JSON says whether JetStream is on.
import net from 'node:net';

/** The fields of the INFO line that we use. */
export interface NatsInfo {
  version?: string;
  server_name?: string;
  jetstream?: boolean;
}

export type Probe =
  /** Nothing listens (connection refused). */
  | { kind: 'free' }
  | { kind: 'nats'; info: NatsInfo }
  /** It accepted and hung up without a word: a server shutting down, or starting. Ask again. */
  | { kind: 'silent' }
  /** Something else: what it said, or that it said nothing in time. */
  | { kind: 'other'; detail: string }
  /** No connection at all, and not refused: a bad address, no route, a firewall. */
  | { kind: 'unreachable'; detail: string };

/** Connects to host:port and reads the first line (at most `timeoutMs`). Never throws. */
export function probeNats(host: string, port: number, timeoutMs = 5_000): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let received = '';
    let settled = false;
    const finish = (probe: Probe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(probe);
    };
    let connected = false;
    socket.once('connect', () => (connected = true));
    const timer = setTimeout(() => {
      if (received) finish(classify(received));
      else if (connected) finish({ kind: 'other', detail: `it accepted a connection but said nothing for ${timeoutMs} ms` });
      else finish({ kind: 'unreachable', detail: `no answer to a connection within ${timeoutMs} ms` });
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\n') || received.length > 64 * 1024) finish(classify(received));
    });
    socket.on('end', () => finish(received ? classify(received) : { kind: 'silent' }));
    socket.on('close', () => finish(received ? classify(received) : { kind: 'silent' }));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') finish({ kind: 'free' });
      else if (error.code === 'ECONNRESET') finish({ kind: 'silent' });
      else if (connected) finish({ kind: 'other', detail: `${error.code ?? 'error'}: ${error.message}` });
      else finish({ kind: 'unreachable', detail: `${error.code ?? 'error'}: ${error.message}` });
    });
  });
}

function classify(text: string): Probe {
  const line = text.split(/\r?\n/)[0]!;
  if (!line.startsWith('INFO {')) return { kind: 'other', detail: `it greets with ${JSON.stringify(line.slice(0, 60))}` };
  try {
    return { kind: 'nats', info: JSON.parse(line.slice('INFO '.length)) as NatsInfo };
  } catch {
    return { kind: 'other', detail: 'its INFO line is not valid JSON' };
  }
}
