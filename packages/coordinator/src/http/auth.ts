import { createHash, timingSafeEqual } from 'node:crypto';
import { ToolqError } from '@toolq/shared';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
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
