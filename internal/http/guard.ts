// Who may talk to this server. It listens on loopback, yet every web page the user opens can
// send it requests: a form or a "simple" fetch posts text/plain cross-origin without asking
// (CSRF), and a page whose name the attacker re-points at 127.0.0.1 (DNS rebinding) is
// same-origin with us in the browser's eyes, so it may also read the answers. Three checks:
//
// - Host (every request, reads included): the name the client used must be one of ours:
//   loopback names, HOST when it names one address, ALLOWED_HOSTS. A rebinding page can only
//   send its own name. Reads are checked too because rebinding lets the page read what it
//   fetches (the live stream of the server's log, stats, metrics); so a Prometheus scraping
//   /metrics or /health under another name needs that name in ALLOWED_HOSTS. The port is not
//   compared: it is whatever port the client connected to, and says nothing about who asks.
// - Origin (every state-changing request): absent is fine (curl, the CLIs, other servers);
//   when a browser sends one it must be this server's own, under the name in Host. "null"
//   (sandboxed frames, file:// pages) is refused. The scheme may be http or https, so a
//   proxy that ends TLS in front of the server still works.
// - Content-Type (every route that writes): application/json only. A browser cannot send that
//   cross-origin without a CORS preflight, which this server never approves.
import { isIP } from 'node:net';
import type { RequestHandler } from 'express';
import { AppError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';

/** Names (lowercase; IPv6 in brackets) this server answers to besides the loopback ones. */
export type ServerNames = ReadonlySet<string>;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** HOST when it names one address or a name (not 0.0.0.0 or ::), plus ALLOWED_HOSTS. */
export function serverNames(host: string, allowedHosts: readonly string[]): ServerNames {
  const names = new Set(allowedHosts.map((name) => name.toLowerCase()));
  const own = hostnameOf(isIP(host) === 6 ? `[${host}]` : host);
  if (own && own !== '0.0.0.0' && own !== '[::]') names.add(own);
  return names;
}

/** Whether a Host header names this server: a loopback name, or one of `names`. */
export function hostAllowed(host: string | undefined, names: ServerNames): boolean {
  const hostname = hostnameOf(host);
  if (hostname === undefined) return false;
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  if (isIP(hostname) === 4 && hostname.startsWith('127.')) return true;
  return names.has(hostname);
}

/** Refuses requests whose Host is not one of this server's names (403). */
export function hostGuard(names: ServerNames, log: Logger): RequestHandler {
  return (req, _res, next) => {
    const host = req.headers.host;
    if (hostAllowed(host, names)) {
      next();
      return;
    }
    log.warn(`refused ${req.method} ${req.path} for Host "${host ?? ''}": not one of this server's names (ALLOWED_HOSTS adds names)`);
    next(
      new AppError(
        'FORBIDDEN',
        `this server answers only to its own names (localhost, 127.0.0.1, [::1], HOST and ALLOWED_HOSTS); ` +
          `"${host ?? ''}" is not one of them. If it is this server's name, add it to ALLOWED_HOSTS`,
      ),
    );
  };
}

/** Refuses state-changing requests that a page from another origin sent (403). */
export function originGuard(log: Logger): RequestHandler {
  return (req, _res, next) => {
    const origin = req.headers.origin;
    if (SAFE_METHODS.has(req.method) || origin === undefined || sameOrigin(origin, req.headers.host)) {
      next();
      return;
    }
    log.warn(`refused ${req.method} ${req.path} from Origin "${origin}": a page on another site may not change anything here`);
    next(new AppError('FORBIDDEN', `requests from another site's page (Origin ${origin}) may not change anything here; send no Origin, or this server's own`));
  };
}

/** Routes that write take JSON only, even with an empty body ({}). */
export const requireJson: RequestHandler = (req, _res, next) => {
  if (!req.is('application/json')) {
    next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'send the body as Content-Type: application/json (an empty one as {})'));
    return;
  }
  next();
};

function sameOrigin(origin: string, host: string | undefined): boolean {
  let url: URL;
  try {
    url = new URL(origin); // "null" and anything that is not a URL throw
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  return host !== undefined && hostnameOf(host) !== undefined && url.host === new URL(`http://${host}`).host;
}

/** The name part of a Host header (or HOST), as the URL parser normalizes it; undefined when malformed. */
function hostnameOf(host: string | undefined): string | undefined {
  if (!host || /[/\\@?#\s]/.test(host)) return undefined;
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return undefined;
  }
}
