/**
 * The web console's token: random for each daemon start, handed to the
 * operator only through the owner-only control socket (`uvfio console`),
 * and required by every HTTP request and the WebSocket. A browser presents
 * it once in the URL; the answer sets it as a cookie (HttpOnly,
 * SameSite=Strict) and sends the browser on to the same page without it,
 * so it stays out of the address bar and the history. Scripts may send
 * `Authorization: Bearer TOKEN` instead.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** 256 random bits, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Compares in constant time (of the token's length). */
export function tokenMatches(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/** The cookie that carries the token; named after the port, as cookies ignore ports. */
export function cookieName(port: number): string {
  return `uvfio-console-${port}`;
}

/** Where a request carries a token: `bearer`, `cookie` or `query`, or undefined. */
export function presentedToken(req: IncomingMessage, url: URL, cookie: string): { token: string; via: 'bearer' | 'cookie' | 'query' } | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return { token: auth.slice(7).trim(), via: 'bearer' };
  const query = url.searchParams.get('token');
  if (query !== null) return { token: query, via: 'query' };
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === cookie) return { token: part.slice(eq + 1).trim(), via: 'cookie' };
  }
  return undefined;
}

/**
 * True unless a browser says the request comes from another origin: a page
 * elsewhere (another port of this machine included) must not drive the
 * console with the operator's cookie. Tools that send no Origin pass.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  const host = req.headers.host;
  return host !== undefined && origin === `http://${host}`;
}
