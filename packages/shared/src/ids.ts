/** The random ids toolq makes: one source of randomness (the CSPRNG), one shape per kind of id. */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** `digits` random lowercase hex digits. */
export function randomHex(digits: number): string {
  return randomBytes(Math.ceil(digits / 2))
    .toString('hex')
    .slice(0, digits);
}

/**
 * A process's id among its peers (a coordinator's, a worker's): host, pid and a random part, so
 * that a restarted process whose pid was reused is still a new one. Safe as a Redis key part.
 */
export function processId(): string {
  const host = hostname()
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .slice(0, 40);
  return `${host}-${process.pid}-${randomHex(6)}`;
}
