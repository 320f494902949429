/**
 * Codes callers must tell apart. Everything else is an ordinary `Error` with a message for people.
 */
export type ToolqErrorCode =
  | 'CONFIG_INVALID'
  | 'TOOL_DEFINITION_INVALID'
  | 'UNKNOWN_TOOL'
  | 'INVALID_INPUT'
  | 'RESULT_UNSERIALIZABLE'
  | 'RESULT_TOO_LARGE'
  | 'TIMEOUT'
  | 'CANCELLED'
  | 'JOB_DATA_INVALID'
  | 'REDIS_UNAVAILABLE'
  | 'SHUTTING_DOWN'
  /**
   * The coordinator listens (for its probes) but has not started yet: it refused the request before
   * doing anything, so even a write may be sent again (after the Retry-After).
   */
  | 'STARTING'
  | 'BATCH_EXISTS'
  | 'MODEL_ERROR'
  | 'NO_MODEL'
  | 'INVALID_REQUEST'
  | 'INVALID_JSON'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  /** The token is known but not for this route: an app token on an operator route, or the reverse. */
  | 'FORBIDDEN'
  /**
   * Without tokens, a request whose Host (or Origin) is not this machine's name: a page on another
   * site reaching the loopback API through DNS rebinding.
   */
  | 'HOST_NOT_ALLOWED'
  /** A write on the queue admin page while it is read-only (TOOLQ_ADMIN_WRITE unset). */
  | 'READ_ONLY'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'INTERNAL'
  /** A run's lease passed to another coordinator: this one must stop writing into it. */
  | 'LEASE_LOST'
  /** An Idempotency-Key reused with a different request. */
  | 'IDEMPOTENCY_CONFLICT'
  /** A finished run cannot be cancelled. */
  | 'RUN_FINISHED'
  /** A run's input is larger than TOOLQ_MAX_RUN_INPUT_BYTES. */
  | 'RUN_TOO_LARGE'
  /** The app has TOOLQ_MAX_ACTIVE_RUNS_PER_APP runs not finished yet. */
  | 'TOO_MANY_RUNS'
  /** An app has as many run event streams open on a coordinator as TOOLQ_MAX_STREAMS_PER_APP allows. */
  | 'TOO_MANY_STREAMS'
  /** An approval already has its decision (approved, denied, expired or cancelled): it is decided once. */
  | 'APPROVAL_DECIDED';

export class ToolqError extends Error {
  override name = 'ToolqError';
  readonly code: ToolqErrorCode;

  constructor(code: ToolqErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Thrown by a tool to say "retrying will not help" (bad credentials, a 404, a business rule):
 * the call fails at once even when the tool declares retries.
 */
export class NonRetryableError extends Error {
  override name = 'NonRetryableError';
}

/** Turns anything thrown (strings, objects, undefined) into an Error, keeping the original as `cause`. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown, { cause: thrown });
  let text: string;
  try {
    text = JSON.stringify(thrown) ?? String(thrown);
  } catch {
    text = String(thrown);
  }
  return new Error(`non-error thrown: ${text}`, { cause: thrown });
}

/**
 * A server that could not listen, as a one-line configuration error that names the setting to
 * change (the bare EADDRINUSE came with a stack trace and no hint). Anything else is returned as is.
 */
export function listenError(
  err: unknown,
  target: { server: string; host: string; port: number; portSetting: string; hostSetting: string },
): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  const at = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  const cannot = `cannot start the ${target.server} on ${at}`;
  if (code === 'EADDRINUSE')
    return new ToolqError(
      'CONFIG_INVALID',
      `${cannot}: the port is in use (another process on this host?); set ${target.portSetting} to a free port, or 0 for any free one`,
      { cause: err },
    );
  if (code === 'EACCES')
    return new ToolqError(
      'CONFIG_INVALID',
      `${cannot}: not allowed to bind that port; set ${target.portSetting} to 1024 or above, or 0 for any free one`,
      { cause: err },
    );
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
    return new ToolqError(
      'CONFIG_INVALID',
      `${cannot}: ${target.host} is not an address of this host; set ${target.hostSetting}`,
      { cause: err },
    );
  return err;
}

/**
 * What a CLI prints when it cannot start: a ToolqError's message is written for the reader (bad
 * configuration, missing tool module), anything else is a bug and keeps its stack.
 */
export function describeStartupError(err: unknown): string {
  if (err instanceof ToolqError) return err.message;
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
