/**
 * ToolqClient: the coordinator's HTTP API for other apps, on the global fetch (no dependencies).
 * Every call takes an AbortSignal and a timeout, retries what is safe to retry with backoff, and
 * fails with a typed error (errors.ts).
 */
import { onAbort } from './abort-fanout.ts';
import * as approvals from './approvals.ts';
import type { CallOptions, ToolBatchOptions, ToolqClientOptions } from './client-options.ts';
import {
  connectionErrorCode,
  httpError,
  parseBody,
  ToolqConnectionError,
  ToolqTimeoutError,
  wasNeverSent,
  withMessage,
} from './errors.ts';
import {
  CALL_OPTIONS,
  CLIENT_OPTIONS,
  checkOptions,
  LIST_RUNS_QUERY,
  type OptionSpec,
  RUN_OPTIONS,
  TOOL_BATCH_OPTIONS,
  ToolqOptionError,
} from './options.ts';
import { backoffMs, parseRetryAfter, RETRY_DEFAULTS } from './retry.ts';
import {
  checkRunEventsArgs,
  followRunEvents,
  RUN_EVENTS_OPTIONS,
  type RunEventsOptions,
} from './run-events.ts';
import type {
  CatalogTool,
  PerformanceReport,
  Run,
  RunCreated,
  RunEvent,
  RunList,
  RunRequest,
  ToolBatch,
  ToolUseLike,
} from './types.ts';

/** How a request may be retried. */
type Replay =
  /** Reads, and writes the server recognises when repeated: after any connection error and on 503. */
  | 'idempotent'
  /**
   * Writes: only when the server cannot have acted on it: the connection was refused, or toolq
   * itself answered a 503 that it gives before doing anything (NOTHING_RAN_503).
   */
  | 'unsafe';

interface Request {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  replay: Replay;
  headers?: Record<string, string>;
  /** Extends the call's deadline so that the server's own wait fits in it. */
  minTimeoutMs?: number;
}

/** 503 codes that no retry will change: a configuration, not a passing state. */
const PERMANENT_503 = new Set(['NO_MODEL']);

/**
 * The coordinator's 503 codes that prove a write did nothing: SHUTTING_DOWN is refused before a
 * batch is planned, STARTING before the request is read. Not REDIS_UNAVAILABLE: Redis can fail (or answer too late) after some of a
 * batch's jobs were enqueued. Any other 503 (a proxy's, a load balancer's) may come after the
 * request was forwarded and run.
 */
const NOTHING_RAN_503 = new Set(['SHUTTING_DOWN', 'STARTING']);

/** Slack over a batch's server-side deadline before the client gives up on the answer. */
const BATCH_TIMEOUT_SLACK_MS = 10_000;

export class ToolqClient {
  private readonly baseUrl: string;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: ToolqClientOptions) {
    checkOptions('ToolqClient options', options, CLIENT_OPTIONS);
    if (options.baseUrl === undefined)
      throw new ToolqOptionError(
        'baseUrl',
        'ToolqClient options: baseUrl is required (the coordinator, e.g. http://127.0.0.1:8080)',
      );
    const url = new URL(options.baseUrl); // throws on a malformed URL, here rather than at the first call
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /**
   * Runs the tool_use blocks of one model turn (`response.content.filter((b) => b.type === 'tool_use')`)
   * and answers their tool_result blocks in order. The call waits at least `batchTimeoutMs` + 10 s.
   */
  async createToolBatch(
    toolUses: readonly ToolUseLike[],
    options: ToolBatchOptions = {},
  ): Promise<ToolBatch> {
    checkOptions('createToolBatch options', options, TOOL_BATCH_OPTIONS);
    const body = {
      tool_uses: toolUses,
      ...(options.batchTimeoutMs !== undefined ? { timeout_ms: options.batchTimeoutMs } : {}),
      ...(options.failurePolicy ? { failure_policy: options.failurePolicy } : {}),
      ...(options.maxRetries !== undefined ? { max_retries: options.maxRetries } : {}),
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.batchId !== undefined ? { batch_id: options.batchId } : {}),
      ...(options.context !== undefined ? { context: options.context } : {}),
      ...approvals.approvalFields(options),
    };
    const minTimeoutMs =
      options.batchTimeoutMs !== undefined ? options.batchTimeoutMs + BATCH_TIMEOUT_SLACK_MS : undefined;
    return this.send<ToolBatch>(
      {
        method: 'POST',
        path: '/v1/tool-batches',
        body,
        // With the caller's id a repeat cannot run the batch twice (the server answers 409).
        replay: options.batchId !== undefined ? 'idempotent' : 'unsafe',
        ...(minTimeoutMs !== undefined ? { minTimeoutMs } : {}),
      },
      options,
      TOOL_BATCH_OPTIONS,
      options.batchId === undefined
        ? undefined
        : { batchId: options.batchId, toolUseIds: toolUses.map((u) => u.id) },
    );
  }

  /** A batch sent with your own batchId, from its record: at once if answered, else when it is. */
  getToolBatch(batchId: string, options: CallOptions = {}): Promise<ToolBatch> {
    return this.send(
      { method: 'GET', path: `/v1/tool-batches/${encodeURIComponent(batchId)}`, replay: 'idempotent' },
      options,
    );
  }

  async listTools(options: CallOptions = {}): Promise<CatalogTool[]> {
    const { tools } = await this.send<{ tools: CatalogTool[] }>(
      { method: 'GET', path: '/v1/tools', replay: 'idempotent' },
      options,
    );
    return tools;
  }

  getReport(options: CallOptions = {}): Promise<PerformanceReport> {
    return this.send({ method: 'GET', path: '/v1/report', replay: 'idempotent' }, options);
  }

  /** The calls of your app waiting for a person's approval, soonest expiry first. */
  async listApprovals(options: CallOptions = {}): Promise<approvals.Approval[]> {
    const list = approvals.LIST_APPROVALS;
    return (await this.send<approvals.ApprovalList>(list, options)).approvals;
  }

  /** Approves or denies a waiting call, once: a second decision is a ToolqHttpError 409 APPROVAL_DECIDED. */
  decideApproval(id: string, decision: approvals.ApprovalDecision, options: CallOptions = {}) {
    // Not repeated: a decision that got through would answer the repeat 409.
    const request = approvals.decideRequest(id, decision);
    return this.send<approvals.DecidedApproval>(request, options);
  }

  /** Starts an agent run on the coordinator's tools; poll it with getRun(). */
  createRun(
    request: RunRequest,
    options: CallOptions & { idempotencyKey?: string } = {},
  ): Promise<RunCreated> {
    // With a key the server answers a repeat with the same run, so any attempt may be repeated.
    const key = options.idempotencyKey;
    return this.send(
      {
        method: 'POST',
        path: '/v1/runs',
        body: request,
        replay: key === undefined ? 'unsafe' : 'idempotent',
        ...(key === undefined ? {} : { headers: { 'idempotency-key': key } }),
      },
      options,
      RUN_OPTIONS,
    );
  }

  /** The caller's runs, newest first; pass `next_cursor` as `cursor` for the next page. */
  async listRuns(
    query: { limit?: number; cursor?: string } = {},
    options: CallOptions = {},
  ): Promise<RunList> {
    checkOptions('listRuns query', query, LIST_RUNS_QUERY);
    const params = new URLSearchParams();
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.cursor !== undefined) params.set('cursor', query.cursor);
    const qs = params.size ? `?${params}` : '';
    return this.send({ method: 'GET', path: `/v1/runs${qs}`, replay: 'idempotent' }, options);
  }

  /** Cancels a run (a 409 RUN_FINISHED when it has finished already). Cancelling twice is harmless. */
  cancelRun(runId: string, options: CallOptions = {}): Promise<{ run_id: string; status: 'cancelled' }> {
    return this.send(
      { method: 'DELETE', path: `/v1/runs/${encodeURIComponent(runId)}`, replay: 'idempotent' },
      options,
    );
  }

  getRun(runId: string, options: CallOptions = {}): Promise<Run> {
    return this.send(
      { method: 'GET', path: `/v1/runs/${encodeURIComponent(runId)}`, replay: 'idempotent' },
      options,
    );
  }

  /**
   * The run's events as they happen (GET /v1/runs/{id}/events), from its first (or after
   * `lastEventId`) to its final one (`done`, `failed` or `cancelled`), after which the iteration
   * ends. A dropped connection is reconnected with `Last-Event-ID` of the last event handed over:
   * no event is lost or repeated. Options are checked here, before anything is sent.
   */
  runEvents(runId: string, options: RunEventsOptions = {}): AsyncGenerator<RunEvent, void, undefined> {
    checkOptions('runEvents options', options, RUN_EVENTS_OPTIONS);
    checkRunEventsArgs(runId, options);
    return followRunEvents(
      {
        baseUrl: this.baseUrl,
        fetch: this.fetch,
        token: this.options.token,
        onRetry: this.options.onRetry,
        getRun: (id, call) => this.getRun(id, call),
        httpError: (status, body, text, path, attempts) =>
          httpError(status, body, text, 'GET', path, attempts),
      },
      runId,
      options,
    );
  }

  /**
   * One call: attempts until an answer, a non-retryable error, the deadline or the caller's abort.
   * `collectAs`: the batch to collect when a repeated POST finds its first attempt got through.
   */
  private async send<T>(
    request: Request,
    call: CallOptions,
    spec: OptionSpec = CALL_OPTIONS,
    collectAs?: CollectAs,
  ): Promise<T> {
    checkOptions(`${request.method} ${request.path.split('?')[0]} options`, call, spec);
    const { method, path } = request;
    const retry =
      call.retry === false
        ? { ...RETRY_DEFAULTS, attempts: 1 }
        : { ...RETRY_DEFAULTS, ...this.options.retry, ...call.retry };
    const timeoutMs = Math.max(call.timeoutMs ?? this.options.timeoutMs ?? 60_000, request.minTimeoutMs ?? 0);
    call.signal?.throwIfAborted();

    // One controller for the whole call: the caller's signal and the deadline both end it.
    const controller = new AbortController();
    const unsubscribe = call.signal
      ? onAbort(call.signal, () => controller.abort(call.signal?.reason))
      : undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    let attempt = 0;
    /** A failed attempt may have reached the server. */
    let maybeReceived = false;
    const stopped = () => {
      if (timedOut) return new ToolqTimeoutError(method, path, timeoutMs, attempt);
      return call.signal?.reason ?? new Error('aborted');
    };
    try {
      for (;;) {
        attempt++;
        let response: Response;
        let text: string;
        try {
          response = await this.fetch(`${this.baseUrl}${path}`, {
            method,
            headers: { ...this.headers(request.body !== undefined), ...request.headers },
            ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
            signal: controller.signal,
          });
          text = await response.text();
        } catch (err) {
          if (controller.signal.aborted) throw stopped();
          const code = connectionErrorCode(err);
          const neverSent = wasNeverSent(code);
          const retryable = neverSent || request.replay === 'idempotent';
          if (!neverSent) maybeReceived = true;
          if (retryable && attempt < retry.attempts) {
            await this.pause(
              request,
              attempt,
              backoffMs(retry, attempt),
              code ?? 'connection error',
              controller.signal,
            );
            if (controller.signal.aborted) throw stopped();
            continue;
          }
          throw new ToolqConnectionError(
            `${method} ${path}: could not reach ${this.baseUrl} (${code ?? (err as Error).message})`,
            { attempts: attempt, cause: err, code, maybeReceived: !neverSent },
          );
        }
        const body = parseBody(text, response.headers.get('content-type'));
        if (response.ok) return body as T;
        const error = httpError(response.status, body, text, method, path, attempt);
        if (error.status === 409 && collectAs !== undefined && maybeReceived) {
          // An earlier attempt may have reached the server before its answer was lost: that is our
          // batch, unless the id was used before for another one (then this request never ran).
          let found: ToolBatch;
          try {
            const { timeoutMs, retry } = call; // the call's own options, not the batch's
            found = await this.getToolBatch(collectAs.batchId, {
              signal: controller.signal,
              ...(timeoutMs === undefined ? {} : { timeoutMs }),
              ...(retry === undefined ? {} : { retry }),
            });
          } catch (err) {
            throw controller.signal.aborted ? stopped() : err;
          }
          if (answersIds(found, collectAs.toolUseIds)) return found as T;
          throw withMessage(
            error,
            `${error.serverMessage} (the batch stored under this id answers other tool_use ids: it is not this request's, which did not run)`,
          );
        }
        const repeatable = request.replay === 'idempotent' || NOTHING_RAN_503.has(error.code);
        if (
          error.status === 503 &&
          !PERMANENT_503.has(error.code) &&
          repeatable &&
          attempt < retry.attempts
        ) {
          // A 503 that does not prove nothing ran: a repeat's 409 means the first attempt got through.
          if (!NOTHING_RAN_503.has(error.code)) maybeReceived = true;
          const delay = backoffMs(retry, attempt, parseRetryAfter(response.headers.get('retry-after')));
          await this.pause(request, attempt, delay, `503 ${error.code}`, controller.signal);
          if (controller.signal.aborted) throw stopped();
          continue;
        }
        throw error;
      }
    } finally {
      clearTimeout(timer);
      unsubscribe?.();
    }
  }

  private headers(hasBody: boolean): Record<string, string> {
    return {
      accept: 'application/json',
      ...(hasBody ? { 'content-type': 'application/json' } : {}),
      ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
    };
  }

  /** Waits before the next attempt; ends early when the call is aborted or times out. */
  private pause(
    request: Request,
    attempt: number,
    delayMs: number,
    reason: string,
    signal: AbortSignal,
  ): Promise<void> {
    this.options.onRetry?.({ method: request.method, path: request.path, attempt, delayMs, reason });
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, delayMs);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** The batch to collect after a repeat answered 409, and the tool_use ids this request sent. */
interface CollectAs {
  batchId: string;
  toolUseIds: readonly string[];
}

/** The batch answers exactly these tool_use blocks, in order. */
function answersIds(batch: ToolBatch, ids: readonly string[]): boolean {
  const answered = Array.isArray(batch.tool_results) ? batch.tool_results.map((r) => r.tool_use_id) : [];
  return answered.length === ids.length && answered.every((id, i) => id === ids[i]);
}
