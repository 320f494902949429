/**
 * Every error the HTTP API answers with, in one place: route handlers throw a ToolqError (or let
 * Fastify's and Redis's errors through) and the error handler turns it into a status and the
 * `{"error": {"code", "message"}}` envelope through this table.
 */
import { ToolqError, type ToolqErrorCode } from '@toolq/shared';
import { isRedisFailure } from '@toolq/shared/internal';

/** The status of each error code; `satisfies` keeps it complete when a code is added. */
export const HTTP_STATUS = {
  CONFIG_INVALID: 500,
  TOOL_DEFINITION_INVALID: 500,
  UNKNOWN_TOOL: 400,
  INVALID_INPUT: 400,
  RESULT_UNSERIALIZABLE: 500,
  RESULT_TOO_LARGE: 500,
  TIMEOUT: 504,
  CANCELLED: 499,
  JOB_DATA_INVALID: 400,
  REDIS_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  STARTING: 503,
  BATCH_EXISTS: 409,
  MODEL_ERROR: 502,
  NO_MODEL: 503,
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  NOT_FOUND: 404,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  HOST_NOT_ALLOWED: 403,
  READ_ONLY: 403,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
  LEASE_LOST: 500,
  IDEMPOTENCY_CONFLICT: 409,
  RUN_FINISHED: 409,
  RUN_TOO_LARGE: 413,
  TOO_MANY_RUNS: 429,
  TOO_MANY_STREAMS: 429,
  APPROVAL_DECIDED: 409,
} as const satisfies Record<ToolqErrorCode, number>;

/** 503s of a passing state, not our bug: nothing to log as a failed request. */
const PASSING_503: ReadonlySet<ToolqErrorCode> = new Set(['REDIS_UNAVAILABLE', 'SHUTTING_DOWN', 'STARTING']);

/** How long a client should wait before sending again a request refused with this code. */
const RETRY_AFTER_S: Partial<Record<ToolqErrorCode, number>> = { STARTING: 1 };

/** Fastify's own errors that a client causes, as toolq codes. */
const FASTIFY_CODES: Record<string, ToolqErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
  FST_ERR_VALIDATION: 'INVALID_REQUEST',
};

const FASTIFY_MESSAGES: Partial<Record<ToolqErrorCode, string>> = {
  BODY_TOO_LARGE: 'the body is larger than the limit (TOOLQ_BODY_LIMIT_BYTES)',
  UNSUPPORTED_MEDIA_TYPE: 'send the body as application/json',
  INVALID_JSON: 'the body is not valid JSON',
};

export interface HttpErrorBody {
  error: { code: string; message: string };
}

/**
 * The status and body for anything a handler threw. `internal` is true for what is our bug;
 * `retryAfterS`, the Retry-After to send, for a refusal that a repeat soon will not meet.
 */
export function toHttpError(err: unknown): {
  status: number;
  body: HttpErrorBody;
  internal: boolean;
  retryAfterS?: number;
} {
  const answer = (code: ToolqErrorCode, message: string) => {
    const retryAfterS = RETRY_AFTER_S[code];
    return {
      status: HTTP_STATUS[code],
      body: { error: { code, message } },
      internal: HTTP_STATUS[code] >= 500 && !PASSING_503.has(code),
      ...(retryAfterS === undefined ? {} : { retryAfterS }),
    };
  };
  if (err instanceof ToolqError) return answer(err.code, err.message);
  if (isRedisFailure(err)) {
    return answer('REDIS_UNAVAILABLE', `Redis is unavailable: ${(err as Error).message}`);
  }
  // Anything can be thrown, undefined too; and a code such as `constructor` is not one of the table's.
  const e = (err ?? {}) as { code?: unknown; message?: unknown };
  const fastifyCode =
    typeof e.code === 'string' && Object.hasOwn(FASTIFY_CODES, e.code) ? FASTIFY_CODES[e.code] : undefined;
  if (fastifyCode) return answer(fastifyCode, FASTIFY_MESSAGES[fastifyCode] ?? String(e.message));
  return answer('INTERNAL', 'internal error');
}
