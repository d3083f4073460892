// A small client for the Order API, used by the CLIs. It speaks HTTP only: a CLI that uses it
// sees exactly what any other client of the API would.

export interface ApiOrder {
  id: string;
  productId: string;
  quantity: number;
  userId: string | null;
  status: 'PENDING' | 'CONFIRMED' | 'REJECTED' | 'CANCELLED';
  rejectReason: string | null;
  /** ISO 8601, from the database clock: when the order was accepted, and last changed (settled). */
  createdAt: string;
  updatedAt: string;
}

export interface ApiProduct {
  id: string;
  name: string;
  stock: number;
}

export interface ApiStats {
  orders: { PENDING: number; CONFIRMED: number; REJECTED: number; CANCELLED: number; total: number };
  outbox: { pending: number; inFlight: number; retrying: number; parked: number };
  processed: { applied: number; rejected: number };
  duplicatesSkipped: number;
  deadLetters: number;
  deliveriesByWorker: Record<string, number>;
  products: ApiProduct[];
}

/** One POST /orders as the client saw it: the status (0 when no response came) and the order on 201. */
export interface PlaceResult {
  status: number;
  order?: ApiOrder;
  errorCode?: string;
}

/** The API did not answer at all (refused, reset, timed out): it is not running there. */
export class ServerUnreachableError extends Error {
  override name = 'ServerUnreachableError';
  readonly code = 'SERVER_UNREACHABLE';
  constructor(
    readonly url: string,
    options: { cause?: unknown },
  ) {
    super(`cannot reach the Order API at ${url}`, options);
  }
}

const REQUEST_TIMEOUT_MS = 15_000;
/** The API's limit for GET /orders?ids=. */
export const LOOKUP_BATCH = 100;

export interface ApiClient {
  readonly baseUrl: string;
  health(): Promise<boolean>;
  /** Which transport the server runs (GET /stats has a `broker` part over NATS); undefined if it does not answer. */
  transport(): Promise<'in-process' | 'nats' | undefined>;
  products(): Promise<ApiProduct[]>;
  stats(): Promise<ApiStats>;
  placeOrder(input: { productId: string; quantity: number; userId?: string }): Promise<PlaceResult>;
  /** POST /orders/:id/cancel: 200 with the CANCELLED order (also when it already was), 409 when it cannot be. */
  cancelOrder(id: string): Promise<PlaceResult>;
  /** Looks up any number of orders, LOOKUP_BATCH ids per request. */
  orders(ids: readonly string[]): Promise<ApiOrder[]>;
  /**
   * What this server's relay workers handed over since it started, by worker (GET /metrics,
   * outbox_events_delivered_total): over a broker, the events each one published and saw acknowledged.
   */
  relayDeliveries(): Promise<Record<string, number>>;
}

export function createApiClient(baseUrl: string): ApiClient {
  const base = baseUrl.replace(/\/+$/, '');

  async function request(path: string, init: RequestInit = {}): Promise<Response> {
    try {
      return await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (error) {
      throw new ServerUnreachableError(base, { cause: error });
    }
  }

  async function getJson<T>(path: string): Promise<T> {
    const res = await request(path);
    if (!res.ok) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  }

  return {
    baseUrl: base,
    async health() {
      try {
        return (await request('/health')).ok;
      } catch {
        return false;
      }
    },
    async transport() {
      try {
        const stats = await getJson<Record<string, unknown>>('/stats');
        return 'broker' in stats ? 'nats' : 'in-process';
      } catch {
        return undefined;
      }
    },
    async products() {
      return (await getJson<{ products: ApiProduct[] }>('/products')).products;
    },
    stats() {
      // Fresh: a tool checks what it just did, so numbers cached from before would mislead it.
      return getJson<ApiStats>('/stats?fresh=1');
    },
    async placeOrder(input) {
      let res: Response;
      try {
        res = await request('/orders', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(input),
        });
      } catch {
        return { status: 0, errorCode: 'NO_RESPONSE' };
      }
      const body = (await res.json().catch(() => undefined)) as (ApiOrder & { error?: { code: string } }) | undefined;
      if (res.status === 201 && body) return { status: 201, order: body };
      return { status: res.status, errorCode: body?.error?.code ?? 'UNKNOWN' };
    },
    async cancelOrder(id) {
      let res: Response;
      try {
        res = await request(`/orders/${encodeURIComponent(id)}/cancel`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      } catch {
        return { status: 0, errorCode: 'NO_RESPONSE' };
      }
      const body = (await res.json().catch(() => undefined)) as (ApiOrder & { error?: { code: string } }) | undefined;
      if (res.status === 200 && body) return { status: 200, order: body };
      return { status: res.status, errorCode: body?.error?.code ?? 'UNKNOWN' };
    },
    async orders(ids) {
      const found: ApiOrder[] = [];
      for (let i = 0; i < ids.length; i += LOOKUP_BATCH) {
        const batch = ids.slice(i, i + LOOKUP_BATCH);
        found.push(...(await getJson<{ orders: ApiOrder[] }>(`/orders?ids=${batch.join(',')}`)).orders);
      }
      return found;
    },
    async relayDeliveries() {
      const res = await request('/metrics');
      if (!res.ok) throw new Error(`GET /metrics answered ${res.status}: ${await res.text()}`);
      return countersByWorker(await res.text(), 'outbox_events_delivered_total');
    },
  };
}

/** `name{worker="W"} n` lines of a Prometheus text exposition, as { W: n }. */
export function countersByWorker(text: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  const line = new RegExp(`^${name}\\{(?:[^}]*,)?worker="([^"]+)"[^}]*\\}\\s+(\\S+)`, 'gm');
  for (const match of text.matchAll(line)) out[match[1]!] = Number(match[2]);
  return out;
}
