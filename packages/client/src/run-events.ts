/**
 * Following a run's events (GET /v1/runs/{id}/events, SSE) as an async iterator that outlives a
 * dropped connection: it reconnects with `Last-Event-ID` of the last event it handed over, so the
 * server sends exactly the events after it (none lost, none twice), until the run's final event.
 */
import { onAbort } from './abort-fanout.ts';
import {
  connectionErrorCode,
  ToolqClientError,
  ToolqConnectionError,
  type ToolqHttpError,
} from './errors.ts';
import { type OptionSpec, ToolqOptionError } from './options.ts';
import { backoffMs, parseRetryAfter, type RetryEvent } from './retry.ts';
import { SseParser } from './sse.ts';
import type { Run, RunEvent } from './types.ts';

export interface RunEventsOptions {
  /** Start after this event (an event's `id`); default: the run's first event. */
  lastEventId?: string;
  /** Aborting ends the iteration: the pending `next()` rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Reconnects in a row that may fail (no event, not even a keep-alive, came over them) before
   * the iteration fails with the last error. Default 5; 0: never reconnect.
   */
  maxReconnects?: number;
  /** Wait before the first reconnect, doubling with each failed one (a server's `retry:` replaces it). Default 500 ms. */
  reconnectDelayMs?: number;
  /** Longest wait between reconnects (caps `retry:` and `Retry-After` too). Default 10 000 ms. */
  maxReconnectDelayMs?: number;
  /**
   * A connection on which nothing (event or keep-alive) arrives for this long is taken for dead
   * and replaced: the coordinator sends a keep-alive every 15 s. Default 45 000 ms.
   */
  idleTimeoutMs?: number;
}

export const RUN_EVENTS_DEFAULTS = {
  maxReconnects: 5,
  reconnectDelayMs: 500,
  maxReconnectDelayMs: 10_000,
  idleTimeoutMs: 45_000,
} satisfies Required<Omit<RunEventsOptions, 'lastEventId' | 'signal'>>;

/** Node's timers hold at most 2³¹−1 ms. */
const MAX_MS = 2 ** 31 - 1;
const whole = (min: number, max: number) => (v: unknown) =>
  Number.isInteger(v) && (v as number) >= min && (v as number) <= max;

export const RUN_EVENTS_OPTIONS: OptionSpec = {
  lastEventId: [
    // As the server checks it (eventIdSchema): a bad one would otherwise be a 400 at each reconnect.
    (v) => typeof v === 'string' && /^\d{1,20}-\d{1,20}$/.test(v),
    "an event's id (<ms>-<seq>)",
  ],
  signal: [(v) => v instanceof AbortSignal, 'an AbortSignal'],
  maxReconnects: [whole(0, 1_000_000), 'a whole number from 0 to 1000000'],
  reconnectDelayMs: [whole(0, MAX_MS), `a whole number of ms from 0 to ${MAX_MS}`],
  maxReconnectDelayMs: [whole(0, MAX_MS), `a whole number of ms from 0 to ${MAX_MS}`],
  idleTimeoutMs: [whole(1, MAX_MS), `a whole number of ms from 1 to ${MAX_MS}`],
};

/** The events after which the server ends the stream: the run is over. */
const FINAL_EVENTS: ReadonlySet<string> = new Set(['done', 'failed', 'cancelled']);

/** Statuses a reconnect may outlast: a full stream cap (429), a restarting coordinator or its proxy. */
const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);
/** 503 codes no reconnect will change. */
const PERMANENT_503 = new Set(['NO_MODEL']);

/** What the client lends the iterator. */
export interface StreamContext {
  baseUrl: string;
  fetch: typeof fetch;
  token: string | undefined;
  onRetry: ((event: RetryEvent) => void) | undefined;
  getRun(runId: string, options: { signal?: AbortSignal }): Promise<Run>;
  httpError(status: number, body: unknown, text: string, path: string, attempts: number): ToolqHttpError;
}

export function checkRunEventsArgs(runId: unknown, options: RunEventsOptions): void {
  if (typeof runId !== 'string' || runId === '') {
    throw new ToolqOptionError('runId', 'runEvents: runId must be a run_id (a non-empty string)');
  }
  const max = options.maxReconnectDelayMs ?? RUN_EVENTS_DEFAULTS.maxReconnectDelayMs;
  const first = options.reconnectDelayMs ?? RUN_EVENTS_DEFAULTS.reconnectDelayMs;
  if (first > max) {
    throw new ToolqOptionError(
      'reconnectDelayMs',
      `runEvents options: reconnectDelayMs (${first}) must not exceed maxReconnectDelayMs (${max})`,
    );
  }
}

/** Why a connection is to be replaced, and what to fail with if no reconnect is left. */
interface Drop {
  reason: string;
  error: Error;
  retryAfterMs?: number | undefined;
}

export async function* followRunEvents(
  ctx: StreamContext,
  runId: string,
  options: RunEventsOptions,
): AsyncGenerator<RunEvent, void, undefined> {
  const settings = { ...RUN_EVENTS_DEFAULTS, ...withoutUndefined(options) };
  const { signal } = options;
  const path = `/v1/runs/${encodeURIComponent(runId)}/events`;
  let lastEventId = options.lastEventId;
  /** Connections in a row over which nothing came. */
  let failures = 0;
  let serverRetryMs: number | undefined;
  /** The run had finished before the current connection was opened. */
  let finishedBefore = false;

  for (;;) {
    signal?.throwIfAborted();
    const connection = new AbortController();
    const unsubscribe = signal ? onAbort(signal, () => connection.abort(signal.reason)) : undefined;
    let idle: ReturnType<typeof setTimeout> | undefined;
    let idleFired = false;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        idleFired = true;
        connection.abort();
      }, settings.idleTimeoutMs);
    };
    const broken = (err: unknown): Drop => {
      if (signal?.aborted) throw signal.reason;
      const reason = idleFired
        ? `nothing received for ${settings.idleTimeoutMs} ms`
        : (connectionErrorCode(err) ?? 'connection error');
      return {
        reason,
        error: new ToolqConnectionError(`GET ${path}: the event stream of ${ctx.baseUrl} broke (${reason})`, {
          attempts: failures + 1,
          cause: err,
          code: connectionErrorCode(err),
          maybeReceived: true,
        }),
      };
    };
    let drop: Drop | undefined;
    let received = 0;
    const wasFinished = finishedBefore;
    try {
      armIdle();
      let response: Response | undefined;
      try {
        response = await ctx.fetch(`${ctx.baseUrl}${path}`, {
          headers: {
            accept: 'text/event-stream',
            'cache-control': 'no-cache',
            ...(ctx.token ? { authorization: `Bearer ${ctx.token}` } : {}),
            ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
          },
          signal: connection.signal,
        });
      } catch (err) {
        drop = broken(err);
      }
      if (response && !(response.ok && response.body && isEventStream(response))) {
        const text = await response.text().catch(() => '');
        const error = ctx.httpError(response.status, parseJson(text), text, path, failures + 1);
        const retryable =
          RETRYABLE_STATUS.has(response.status) &&
          !(response.status === 503 && PERMANENT_503.has(error.code));
        if (!retryable) throw error;
        drop = {
          reason: `${response.status} ${error.code}`,
          error,
          retryAfterMs: parseRetryAfter(response.headers.get('retry-after')),
        };
      } else if (response?.body) {
        const reader = response.body.getReader();
        const parser = new SseParser(lastEventId);
        try {
          for (;;) {
            let chunk: Awaited<ReturnType<typeof reader.read>>;
            try {
              chunk = await reader.read();
            } catch (err) {
              drop = broken(err);
              break;
            }
            if (chunk.done) break;
            armIdle();
            // Something came, a keep-alive at least: the server serves this stream.
            failures = 0;
            for (const message of parser.push(chunk.value)) {
              const event = toRunEvent(message.id, message.event, message.data, path);
              lastEventId = event.id;
              received += 1;
              // A caller slow to ask for the next event is not a dead connection.
              clearTimeout(idle);
              yield event;
              if (FINAL_EVENTS.has(event.type)) return;
              armIdle();
            }
            if (parser.retryMs !== undefined) serverRetryMs = parser.retryMs;
          }
        } finally {
          reader.cancel().catch(() => undefined);
        }
        if (!drop) {
          // Ended cleanly without the final event: the coordinator shut down, or had nothing after
          // our id. The server reads the run's status before its log, so a stream opened once the
          // run had finished and ended with no event means there is nothing after our id.
          if (received === 0 && wasFinished) return;
          drop = {
            reason: 'the stream ended before the run did',
            error: new ToolqConnectionError(`GET ${path}: the event stream ended before the run did`, {
              attempts: failures + 1,
              cause: undefined,
              code: undefined,
              maybeReceived: true,
            }),
          };
          if (received === 0) {
            const run = await ctx.getRun(runId, signal ? { signal } : {});
            if (run.status !== 'running') {
              // One more stream to pick up what came before the end, with no wait and no failure counted.
              finishedBefore = true;
              continue;
            }
          }
        }
      }
    } finally {
      clearTimeout(idle);
      unsubscribe?.();
      connection.abort(); // a body left unread (the caller stopped iterating) is closed
    }

    const why = drop ?? { reason: 'no answer', error: new Error(`GET ${path}: no answer`) };
    failures += 1;
    if (failures > settings.maxReconnects) throw why.error;
    const delayMs = backoffMs(
      {
        attempts: settings.maxReconnects + 1,
        initialDelayMs: Math.min(serverRetryMs ?? settings.reconnectDelayMs, settings.maxReconnectDelayMs),
        maxDelayMs: settings.maxReconnectDelayMs,
      },
      failures,
      why.retryAfterMs,
    );
    ctx.onRetry?.({ method: 'GET', path, attempt: failures, delayMs, reason: why.reason });
    await pause(delayMs, signal);
  }
}

function toRunEvent(id: string, type: string, data: string, path: string): RunEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    throw new ToolqClientError(`GET ${path}: event ${id} (${type}) has data that is not JSON`, {
      attempts: 1,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || id === '') {
    throw new ToolqClientError(`GET ${path}: event ${id || '(no id)'} (${type}) is not a run event`, {
      attempts: 1,
    });
  }
  return { id, type, data: parsed } as RunEvent;
}

function isEventStream(response: Response): boolean {
  return response.headers.get('content-type')?.toLowerCase().startsWith('text/event-stream') ?? false;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      unsubscribe?.();
      resolve();
    }, ms);
    const unsubscribe = signal
      ? onAbort(signal, () => {
          clearTimeout(timer);
          reject(signal.reason);
        })
      : undefined;
  });
}
