import { createHash, timingSafeEqual } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { ToolqError } from '@toolq/shared';

/**
 * A listen address that only this machine can reach: `localhost`, `::1`, or an IPv4 address in
 * 127.0.0.0/8 (also IPv4-mapped). A name such as `127.0.0.1.nip.io` is resolved through DNS and
 * may point anywhere, so only literal addresses count.
 */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice('::ffff:'.length) : host;
  return isIPv4(v4) && v4.split('.')[0] === '127';
}

/** Without a token the API may only be reached from this machine. */
export function assertSafeListen(host: string, token: string | undefined): void {
  if (!token && !isLoopback(host)) {
    throw new ToolqError(
      'CONFIG_INVALID',
      `refusing to listen on ${host} without a token: set TOOLQ_API_TOKEN (16+ characters) to serve beyond loopback, or use TOOLQ_HOST=127.0.0.1`,
    );
  }
}

/**
 * Compares a presented `Authorization` header with the expected token in constant time. Hashing
 * both first makes the comparison independent of the lengths too.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = /^Bearer (.+)$/i.exec(header ?? '')?.[1] ?? '';
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b) && presented.length > 0;
}
