/**
 * Bearer tokens and the app each one stands for. `TOOLQ_API_TOKEN` is the app `default`;
 * `TOOLQ_API_TOKENS` adds one token per named app. Without any token every request is `default`
 * and the server listens on loopback only. Tokens are compared in constant time and never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { ToolqError } from '@toolq/shared';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const DEFAULT_APP = 'default';

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

/** Without a token the API may only be reached from this machine. `auth`: a token, or whether any is set. */
export function assertSafeListen(host: string, auth: string | boolean | undefined): void {
  if (!auth && !isLoopback(host)) {
    throw new ToolqError(
      'CONFIG_INVALID',
      `refusing to listen on ${host} without a token: set TOOLQ_API_TOKEN or TOOLQ_API_TOKENS (16+ characters) to serve beyond loopback, or use TOOLQ_HOST=127.0.0.1`,
    );
  }
}

const sha256 = (text: string) => createHash('sha256').update(text).digest();

function presentedToken(header: string | undefined): string {
  return /^Bearer (.+)$/i.exec(header ?? '')?.[1] ?? '';
}

/**
 * Compares a presented `Authorization` header with the expected token in constant time. Hashing
 * both first makes the comparison independent of the lengths too.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const presented = presentedToken(header);
  return timingSafeEqual(sha256(presented), sha256(token)) && presented.length > 0;
}

/** The apps' tokens, hashed once; `appFor` looks at every one so the time says nothing of which matched. */
export class AppTokens {
  private readonly entries: { app: string; digest: Buffer }[];

  constructor(tokens: {
    apiToken?: string | undefined;
    apiTokens?: ReadonlyMap<string, string> | undefined;
  }) {
    this.entries = [
      ...(tokens.apiToken ? [{ app: DEFAULT_APP, digest: sha256(tokens.apiToken) }] : []),
      ...[...(tokens.apiTokens ?? new Map<string, string>())].map(([app, token]) => ({
        app,
        digest: sha256(token),
      })),
    ];
  }

  get required(): boolean {
    return this.entries.length > 0;
  }

  /** The app whose token the header presents; undefined when it presents none of them. */
  appFor(header: string | undefined): string | undefined {
    const presented = presentedToken(header);
    const digest = sha256(presented);
    let found: string | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest) && presented.length > 0) found ??= entry.app;
    }
    return found;
  }
}

const apps = new WeakMap<FastifyRequest, string>();

/** The app a request speaks for: its token's app, or `default` (the single token, or no token). */
export function appOf(request: FastifyRequest): string {
  return apps.get(request) ?? DEFAULT_APP;
}

/** Whether the request's path (without its query) is one of `openPaths`. */
export function isOpenPath(request: FastifyRequest, openPaths: ReadonlySet<string>): boolean {
  return openPaths.has(request.url.split('?')[0] ?? '');
}

/** Refuses requests without a known token (except `openPaths`) and records each request's app. */
export function registerAuth(app: FastifyInstance, tokens: AppTokens, openPaths: ReadonlySet<string>): void {
  if (!tokens.required) return;
  app.addHook('onRequest', async (request, reply) => {
    if (isOpenPath(request, openPaths)) return;
    const name = tokens.appFor(request.headers.authorization);
    if (name === undefined) {
      // The body is not read: closing the socket stops a slow sender from holding it.
      reply.header('www-authenticate', 'Bearer').header('connection', 'close');
      throw new ToolqError('UNAUTHORIZED', 'missing or wrong bearer token');
    }
    apps.set(request, name);
  });
}
