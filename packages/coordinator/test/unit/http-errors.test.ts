/**
 * The one table that turns errors into HTTP answers (src/http/errors.ts), without Redis: every
 * ToolqError code's status, the envelope, which errors are logged as ours, Redis failures, and
 * Fastify's own errors, both hand-made and as a real Fastify raises them.
 */
import { ToolqError, type ToolqErrorCode } from '@toolq/shared';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { HTTP_STATUS, toHttpError } from '../../src/http/errors.ts';

/** The statuses clients rely on: changing one changes the API. */
const EXPECTED: Record<ToolqErrorCode, number> = {
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
};

describe('ToolqErrors', () => {
  it('answer the status of their code', () => {
    expect(HTTP_STATUS).toEqual(EXPECTED);
  });

  it('answer {"error": {"code", "message"}} with their own message', () => {
    for (const code of Object.keys(EXPECTED) as ToolqErrorCode[]) {
      const { status, body } = toHttpError(new ToolqError(code, `about ${code}`));
      expect(status, code).toBe(EXPECTED[code]);
      expect(body, code).toEqual({ error: { code, message: `about ${code}` } });
    }
  });

  it('count as our bug (logged) when 5xx, except Redis being away, starting and shutting down', () => {
    const internal = (Object.keys(EXPECTED) as ToolqErrorCode[])
      .filter((code) => toHttpError(new ToolqError(code, 'x')).internal)
      .sort();
    expect(internal).toEqual([
      'CONFIG_INVALID',
      'INTERNAL',
      'LEASE_LOST',
      'MODEL_ERROR',
      'NO_MODEL',
      'RESULT_TOO_LARGE',
      'RESULT_UNSERIALIZABLE',
      'TIMEOUT',
      'TOOL_DEFINITION_INVALID',
    ]);
  });

  it('a refusal while starting tells the client when to send again; nothing else does', () => {
    const withRetryAfter = (Object.keys(EXPECTED) as ToolqErrorCode[]).filter(
      (code) => toHttpError(new ToolqError(code, 'x')).retryAfterS !== undefined,
    );
    expect(withRetryAfter).toEqual(['STARTING']);
    expect(toHttpError(new ToolqError('STARTING', 'x')).retryAfterS).toBe(1);
  });
});

describe('other errors', () => {
  it('a Redis failure is 503 REDIS_UNAVAILABLE with its message, not our bug', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    const readOnly = Object.assign(new Error("READONLY You can't write against a read only replica."), {
      name: 'ReplyError',
    });
    for (const err of [refused, readOnly, new Error('Connection is closed.')]) {
      expect(toHttpError(err)).toEqual({
        status: 503,
        body: { error: { code: 'REDIS_UNAVAILABLE', message: `Redis is unavailable: ${err.message}` } },
        internal: false,
      });
    }
  });

  it('anything else is 500 INTERNAL and says nothing of what broke', () => {
    for (const err of [
      new TypeError('x.trim is not a function'),
      'a string',
      undefined,
      null,
      { code: 'FST_ERR_OTHER' },
      { code: 'constructor' },
    ]) {
      expect(toHttpError(err)).toEqual({
        status: 500,
        body: { error: { code: 'INTERNAL', message: 'internal error' } },
        internal: true,
      });
    }
  });

  it("Fastify's client errors get toolq codes and toolq's words", () => {
    const fastify = (code: string, message = 'fastify says') =>
      toHttpError(Object.assign(new Error(message), { code }));
    expect(fastify('FST_ERR_CTP_BODY_TOO_LARGE')).toMatchObject({
      status: 413,
      body: {
        error: {
          code: 'BODY_TOO_LARGE',
          message: 'the body is larger than the limit (TOOLQ_BODY_LIMIT_BYTES)',
        },
      },
    });
    expect(fastify('FST_ERR_CTP_INVALID_MEDIA_TYPE')).toMatchObject({
      status: 415,
      body: { error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send the body as application/json' } },
    });
    for (const code of ['FST_ERR_CTP_EMPTY_JSON_BODY', 'FST_ERR_CTP_INVALID_JSON_BODY']) {
      expect(fastify(code)).toMatchObject({
        status: 400,
        body: { error: { code: 'INVALID_JSON', message: 'the body is not valid JSON' } },
      });
    }
    // Without words of toolq's own, Fastify's message says what is wrong.
    for (const code of ['FST_ERR_CTP_INVALID_CONTENT_LENGTH', 'FST_ERR_VALIDATION']) {
      expect(fastify(code, 'body/x must be string')).toEqual({
        status: 400,
        body: { error: { code: 'INVALID_REQUEST', message: 'body/x must be string' } },
        internal: false,
      });
    }
  });

  it('as a real Fastify raises them (its error codes are what the table expects)', async () => {
    const app = Fastify({ bodyLimit: 64 });
    app.post('/echo', async (request) => request.body);
    app.setErrorHandler((error, _request, reply) => {
      const { status, body } = toHttpError(error);
      return reply.code(status).send(body);
    });
    const send = async (payload: string, contentType: string) => {
      const res = await app.inject({
        method: 'POST',
        url: '/echo',
        payload,
        headers: { 'content-type': contentType },
      });
      return `${res.statusCode} ${(res.json() as { error: { code: string } }).error.code}`;
    };
    try {
      expect(await send(JSON.stringify({ big: 'x'.repeat(100) }), 'application/json')).toBe(
        '413 BODY_TOO_LARGE',
      );
      expect(await send('<x/>', 'application/xml')).toBe('415 UNSUPPORTED_MEDIA_TYPE');
      expect(await send('{"a":', 'application/json')).toBe('400 INVALID_JSON');
      expect(await send('', 'application/json')).toBe('400 INVALID_JSON');
    } finally {
      await app.close();
    }
  });
});
