/** The HTTP server's limits, shared by the server (server.ts) and the route handlers (routes.ts). */
import { DEFAULTS } from '@toolq/shared/internal';

export const HTTP_DEFAULTS = {
  bodyLimitBytes: DEFAULTS.bodyLimitBytes,
  requestTimeoutMs: DEFAULTS.requestTimeoutMs,
  /** Deeper bodies are refused before parsing: JSON.stringify and validators recurse. */
  maxBodyDepth: 200,
  /** How long a route waits for Redis before answering 503. */
  redisWaitMs: 5_000,
} as const;
