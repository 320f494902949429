/**
 * Bearer tokens and whom each one stands for. `TOOLQ_API_TOKEN` is the app `default`;
 * `TOOLQ_API_TOKENS` adds one token per named app; `TOOLQ_OPERATOR_TOKENS` one per operator, who
 * may open the queue admin page and /metrics and nothing else (an app token there is 403, as is
 * an operator token on the app API). Without any token every request is `default`, every route is
 * open, the server listens on loopback only and serves only requests naming this machine.
 * Tokens are compared in constant time and never logged.
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
      `refusing to listen on ${host} without a token: set TOOLQ_API_TOKEN or TOOLQ_API_TOKENS (and TOOLQ_OPERATOR_TOKENS for /metrics and /admin/queues; 16+ characters) to serve beyond loopback, or use TOOLQ_HOST=127.0.0.1`,
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

/** Who a token speaks for: an app (the API) or an operator (the admin page and /metrics). */
export interface TokenHolder {
  role: 'app' | 'operator';
  name: string;
}

/** What a route needs: nothing (probes), an app token, an operator token, or any known token (no route: 404). */
export type Access = 'open' | 'app' | 'operator' | 'token';

/**
 * The apps' and operators' tokens, hashed once; `holderOf` looks at every one so the time says
 * nothing of which matched, nor of whether it was an app's or an operator's.
 */
export class BearerTokens {
  private readonly entries: (TokenHolder & { digest: Buffer })[];

  constructor(tokens: {
    apiToken?: string | undefined;
    apiTokens?: ReadonlyMap<string, string> | undefined;
    operatorTokens?: ReadonlyMap<string, string> | undefined;
  }) {
    const holders = (role: TokenHolder['role'], map: ReadonlyMap<string, string> | undefined) =>
      [...(map ?? new Map<string, string>())].map(([name, token]) => ({ role, name, digest: sha256(token) }));
    this.entries = [
      ...(tokens.apiToken
        ? [{ role: 'app' as const, name: DEFAULT_APP, digest: sha256(tokens.apiToken) }]
        : []),
      ...holders('app', tokens.apiTokens),
      ...holders('operator', tokens.operatorTokens),
    ];
  }

  /** Whether any token is set: then every route but the probes needs one. */
  get required(): boolean {
    return this.entries.length > 0;
  }

  /** Whose token the header presents; undefined when it presents none of them. */
  holderOf(header: string | undefined): TokenHolder | undefined {
    const presented = presentedToken(header);
    const digest = sha256(presented);
    let found: TokenHolder | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest) && presented.length > 0)
        found ??= { role: entry.role, name: entry.name };
    }
    return found;
  }

  /** The app whose token the header presents; undefined for an operator's token or none. */
  appFor(header: string | undefined): string | undefined {
    const holder = this.holderOf(header);
    return holder?.role === 'app' ? holder.name : undefined;
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

const FORBIDDEN: Record<'app' | 'operator', string> = {
  operator:
    'this route is for operators: send a token of TOOLQ_OPERATOR_TOKENS (an app token does not open it)',
  app: 'this route is for apps: send a token of TOOLQ_API_TOKEN or TOOLQ_API_TOKENS (an operator token opens only the admin page and /metrics)',
};

/**
 * Refuses requests without a known token (401) or with the other role's token (403), and records
 * each app request's app. `accessOf` is asked once routing is done, so it can decide by the route
 * matched rather than by the raw URL (which may spell the same path in other ways).
 */
export function registerAuth(
  app: FastifyInstance,
  tokens: BearerTokens,
  accessOf: (request: FastifyRequest) => Access,
): void {
  if (!tokens.required) return;
  app.addHook('onRequest', async (request, reply) => {
    const access = accessOf(request);
    if (access === 'open') return;
    const holder = tokens.holderOf(request.headers.authorization);
    if (holder === undefined) {
      // The body is not read: closing the socket stops a slow sender from holding it.
      reply.header('www-authenticate', 'Bearer').header('connection', 'close');
      throw new ToolqError('UNAUTHORIZED', 'missing or wrong bearer token');
    }
    if (access !== 'token' && holder.role !== access) {
      reply.header('connection', 'close');
      throw new ToolqError('FORBIDDEN', FORBIDDEN[access]);
    }
    if (holder.role === 'app') apps.set(request, holder.name);
  });
}

/** The names that always mean this machine; a port may follow any of them. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** The host part of a Host header or an Origin's authority, lower-cased, without its port. */
function hostName(authority: string): string {
  const lower = authority.trim().toLowerCase();
  if (lower.startsWith('[')) return lower.slice(0, lower.indexOf(']') + 1);
  return lower.replace(/:\d*$/, '');
}

/**
 * Whether a request without tokens may be served: its Host (and Origin, when a browser sends one)
 * must name this machine or one of `allowed`. A page on attacker.example whose name is rebound to
 * 127.0.0.1 reaches the loopback listener with `Host: attacker.example`; it is refused here.
 */
export function hostAllowed(
  headers: { host?: string | undefined; origin?: string | undefined },
  allowed: readonly string[],
): boolean {
  const known = (name: string) => LOOPBACK_NAMES.includes(name) || allowed.includes(name);
  if (headers.host === undefined || !known(hostName(headers.host))) return false;
  if (headers.origin === undefined) return true;
  try {
    const origin = new URL(headers.origin);
    return (origin.protocol === 'http:' || origin.protocol === 'https:') && known(hostName(origin.host));
  } catch {
    // `Origin: null` (a sandboxed frame, a file: page) and anything unparsable.
    return false;
  }
}

/**
 * Without tokens the API is open to whoever reaches the loopback listener, browsers included:
 * only requests naming this machine (or TOOLQ_ALLOWED_HOSTS) are served. With tokens the token
 * is the guard, and any Host is served (a proxy or a Service may use any name).
 */
export function registerHostCheck(
  app: FastifyInstance,
  tokens: BearerTokens,
  allowed: readonly string[],
): void {
  if (tokens.required) return;
  app.addHook('onRequest', async (request, reply) => {
    if (hostAllowed({ host: request.headers.host, origin: request.headers.origin }, allowed)) return;
    reply.header('connection', 'close');
    throw new ToolqError(
      'HOST_NOT_ALLOWED',
      'without an API token only requests to localhost, 127.0.0.1 or [::1] are served (Host and Origin headers); add other names to TOOLQ_ALLOWED_HOSTS, or set tokens',
    );
  });
}
