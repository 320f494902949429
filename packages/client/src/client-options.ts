/** What the client and its calls take: the options a caller writes (checked in options.ts). */
import type { RetryEvent, RetryOptions } from './retry.ts';
import type { FailurePolicy } from './types.ts';

export interface ToolqClientOptions {
  /** The coordinator, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** The server's TOOLQ_API_TOKEN, sent as `Authorization: Bearer`. Default: none. */
  token?: string;
  /** Bound on a whole call, retries included. Default 60 000 ms (a tool batch waits longer: see createToolBatch). */
  timeoutMs?: number;
  /** Default: 4 attempts, 100 ms doubling to at most 2 s. */
  retry?: RetryOptions;
  /** Told before each retry (for logs and metrics). */
  onRetry?: (event: RetryEvent) => void;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

/** Options every call takes. */
export interface CallOptions {
  /** Aborting rejects the call with the signal's reason; a tool batch's calls are cancelled on the server. */
  signal?: AbortSignal;
  /** Replaces the client's timeoutMs for this call. */
  timeoutMs?: number;
  /** Replaces the client's retry options for this call; `false`: one attempt. */
  retry?: RetryOptions | false;
}

export interface ToolBatchOptions extends CallOptions {
  /** Per-call timeout on the server. Default: each tool's own. */
  batchTimeoutMs?: number;
  /** Default `continue`. */
  failurePolicy?: FailurePolicy;
  maxRetries?: number;
  /**
   * Orders your app's calls of a flow-controlled tool (a cap or rate limit) that wait for a slot:
   * a whole number from -10 to 10, higher first; other apps keep their turns. Default 0.
   */
  priority?: number;
  /**
   * Your id for the batch (letters, digits, `_.-`): lets you collect it with getToolBatch(), and
   * makes the POST safe to send again after a broken connection (a 409 then means the first
   * attempt got through, and the client collects that batch instead).
   */
  batchId?: string;
  /**
   * Who the batch acts for (a user id, a tenant, …): a JSON object of at most 8,192 bytes that
   * every tool reads as `ctx.context`, with your token's app as `ctx.app`. Never logged.
   */
  context?: Record<string, unknown>;
  /** Tools whose calls wait for a person's approval this time (besides those whose definition asks for it). */
  approvalTools?: readonly string[];
  /** When a pending approval expires. Default 300 000 ms (5 min) for a batch. */
  approvalTimeoutMs?: number;
}
