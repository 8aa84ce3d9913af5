/**
 * `--http [ADDR:]PORT`: where the web console listens. Without ADDR it is
 * the loopback address only; an operator who wants it reachable from
 * elsewhere names the address.
 */
import { isIP } from 'node:net';
import { VfioError } from '../base/errors.js';

export const DEFAULT_HTTP_HOST = '127.0.0.1';

export interface ListenAddress {
  host: string;
  port: number;
  /** True when the operator named the address. */
  explicit: boolean;
}

/** Parses `PORT`, `HOST:PORT`, `IPV4:PORT` or `[IPV6]:PORT`; EINVAL in words otherwise. */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):)?(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port > 65535) {
    throw new VfioError('EINVAL', `--http: ${JSON.stringify(text)} is not [ADDR:]PORT (a port from 0 to 65535, e.g. 8080 or 127.0.0.1:8080)`);
  }
  const raw = m[1];
  if (raw === undefined) return { host: DEFAULT_HTTP_HOST, port, explicit: false };
  const host = raw.startsWith('[') ? raw.slice(1, -1) : raw;
  if (raw.startsWith('[') && isIP(host) !== 6) throw new VfioError('EINVAL', `--http: ${raw} is not an IPv6 address`);
  return { host, port, explicit: true };
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** `host:port` as a URL's authority (IPv6 in brackets). */
export function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/**
 * The host a browser on this machine uses to reach a server listening on
 * `host`: a wildcard address becomes the loopback one.
 */
export function reachableHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}
