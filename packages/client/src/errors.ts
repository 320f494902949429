/**
 * What a call can fail with, told apart by class: the server answered an error, the server could
 * not be reached (or the connection broke), or the call ran out of time. A caller's own abort
 * rejects with its signal's reason, as fetch does.
 */

export class ToolqClientError extends Error {
  override name = 'ToolqClientError';
  /** How many HTTP attempts the call made, retries included. */
  readonly attempts: number;

  constructor(message: string, options: { attempts: number; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.attempts = options.attempts;
  }
}

/** The coordinator answered with an error status. */
export class ToolqHttpError extends ToolqClientError {
  override name = 'ToolqHttpError';
  readonly status: number;
  /** The server's code (`INVALID_REQUEST`, `UNAUTHORIZED`, `NOT_FOUND`, `BATCH_EXISTS`, …), or `HTTP_<status>`. */
  readonly code: string;
  /** The server's message: what is wrong and where. */
  readonly serverMessage: string;
  readonly method: string;
  readonly path: string;
  /** The body as received (parsed JSON when it was JSON). */
  readonly body: unknown;

  constructor(input: {
    status: number;
    code: string;
    serverMessage: string;
    method: string;
    path: string;
    body: unknown;
    attempts: number;
  }) {
    super(`${input.method} ${input.path} answered ${input.status} ${input.code}: ${input.serverMessage}`, {
      attempts: input.attempts,
    });
    this.status = input.status;
    this.code = input.code;
    this.serverMessage = input.serverMessage;
    this.method = input.method;
    this.path = input.path;
    this.body = input.body;
  }
}

/** No answer: the connection was refused, reset, or broke before the response was complete. */
export class ToolqConnectionError extends ToolqClientError {
  override name = 'ToolqConnectionError';
  /** The system error code when there is one (`ECONNREFUSED`, `ECONNRESET`, `UND_ERR_SOCKET`, …). */
  readonly code: string | undefined;
  /**
   * False when the request certainly never reached the server (refused, no such host): safe to
   * send again. True when it may have been received and acted on.
   */
  readonly maybeReceived: boolean;

  constructor(
    message: string,
    options: { attempts: number; cause: unknown; code: string | undefined; maybeReceived: boolean },
  ) {
    super(message, options);
    this.code = options.code;
    this.maybeReceived = options.maybeReceived;
  }
}

/** The call's `timeoutMs` passed (over all its attempts). */
export class ToolqTimeoutError extends ToolqClientError {
  override name = 'ToolqTimeoutError';
  readonly timeoutMs: number;

  constructor(method: string, path: string, timeoutMs: number, attempts: number) {
    super(`${method} ${path} did not answer within ${timeoutMs} ms`, { attempts });
    this.timeoutMs = timeoutMs;
  }
}

/** Codes of errors that connecting can fail with before a byte of the request was sent. */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** The system error code under fetch's `TypeError: fetch failed` (possibly an AggregateError of several addresses). */
export function connectionErrorCode(err: unknown): string | undefined {
  let cause: unknown = err;
  for (let depth = 0; depth < 4 && cause && typeof cause === 'object'; depth++) {
    const { code, errors } = cause as { code?: unknown; errors?: unknown };
    if (typeof code === 'string') return code;
    if (Array.isArray(errors) && errors.length > 0) return connectionErrorCode(errors[0]);
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

export function wasNeverSent(code: string | undefined): boolean {
  return code !== undefined && NOT_SENT_CODES.has(code);
}

/** The same error with the server's message replaced (explaining a 409). */
export function withMessage(error: ToolqHttpError, serverMessage: string): ToolqHttpError {
  return new ToolqHttpError({
    status: error.status,
    code: error.code,
    serverMessage,
    method: error.method,
    path: error.path,
    body: error.body,
    attempts: error.attempts,
  });
}

/** The body as JSON when it says it is JSON and parses, else the text. */
export function parseBody(text: string, contentType: string | null): unknown {
  if (!contentType?.includes('json') || text === '') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The server's `{"error": {"code", "message"}}`, or whatever else answered (a proxy, Fastify while closing). */
export function httpError(
  status: number,
  body: unknown,
  text: string,
  method: string,
  path: string,
  attempts: number,
): ToolqHttpError {
  const envelope = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof envelope?.code === 'string' ? envelope.code : `HTTP_${status}`;
  const fallback = (body as { message?: unknown } | null)?.message;
  const serverMessage =
    typeof envelope?.message === 'string'
      ? envelope.message
      : typeof fallback === 'string'
        ? fallback
        : text.slice(0, 500) || `status ${status}`;
  return new ToolqHttpError({ status, code, serverMessage, method, path, body, attempts });
}
