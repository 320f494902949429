/**
 * Runs one tool call on this worker: validates the input, runs the tool with an AbortSignal and a
 * timeout this worker enforces itself, retries when the batch asks for it and the tool allows it,
 * and turns every outcome into a CallResult. It never throws.
 */
import {
  type AnyTool,
  type CallResult,
  CONTRACT_VERSION,
  NonRetryableError,
  type Outcome,
} from '@toolq/shared';
import {
  coerceError,
  describeZodIssues,
  encodeToolOutput,
  isRateLimitedError,
  messages,
  type ParsedJobData,
  raceSignal,
} from '@toolq/shared/internal';
import type { ToolLookup } from './served-tools.ts';
import { WORKER_DEFAULTS } from './worker-options.ts';

export interface RunCallOptions {
  tools: ToolLookup;
  data: ParsedJobData;
  workerId: string;
  /** The dispatch's uid (ToolRunContext.batchUid). */
  batchUid: string;
  /** ToolRunContext.idempotencyKey: the same for every run of the call. */
  idempotencyKey: string;
  maxResultBytes: number;
  /** Aborted when the coordinator cancels the call or the worker is forced to stop. */
  signal: AbortSignal;
  /** The tool threw RateLimitedError: the call is answered `not_started` unless flow control runs it again. */
  onRateLimited?: (retryAfterMs: number, message: string) => void;
  /** `ctx.reportProgress`; default: reports go nowhere. */
  reportProgress?: (progress: number, total?: number, message?: string) => void;
}

const IGNORE_PROGRESS = (): void => undefined;

class TimeoutSignalReason extends Error {}

export async function runCall(options: RunCallOptions): Promise<CallResult> {
  const { data, tools } = options;
  const startedAt = Date.now();
  const base: Pick<CallResult, 'v' | 'toolUseId' | 'tool' | 'worker'> = {
    v: CONTRACT_VERSION,
    toolUseId: data.toolUseId,
    tool: data.tool,
    worker: options.workerId,
  };
  const finish = (
    outcome: Outcome,
    content: CallResult['content'],
    attempts: number,
    mcp?: CallResult['mcp'],
  ): CallResult => ({
    ...base,
    outcome,
    content,
    isError: outcome !== 'ok',
    ...(mcp ? { mcp } : {}),
    attempts,
    enqueuedAt: data.enqueuedAt,
    startedAt,
    finishedAt: Date.now(),
  });

  const tool = tools.get(data.tool);
  if (!tool) return finish('unknown_tool', messages.unknownTool(data.tool), 0);

  const input = tool.input.safeParse(data.input);
  if (!input.success) {
    return finish('invalid_input', messages.invalidInput(data.tool, describeZodIssues(input.error)), 0);
  }

  // The job's timeout already includes the tool's own; the deadline bounds time spent in the queue too.
  const budgetMs = Math.max(0, Math.min(data.timeoutMs, data.deadline - startedAt));
  // One controller for the timeout and the outer signal: AbortSignal.any costs ~5% of a worker's CPU.
  const combined = new AbortController();
  const timer = setTimeout(() => combined.abort(new TimeoutSignalReason()), budgetMs);
  const onOuterAbort = () => combined.abort(options.signal.reason);
  if (options.signal.aborted) onOuterAbort();
  else options.signal.addEventListener('abort', onOuterAbort, { once: true });
  const signal = combined.signal;
  const maxAttempts = attemptsFor(tool, data);

  try {
    for (let attempt = 1; ; attempt++) {
      try {
        // Settles as soon as the signal aborts, even when the tool ignores its signal: the answer
        // must not wait for a tool that never returns (it keeps running; nothing waits for it).
        const output = await raceSignal(
          Promise.resolve().then(() =>
            tool.run(input.data, {
              signal,
              attempt,
              toolUseId: data.toolUseId,
              batchUid: options.batchUid,
              batchId: options.batchUid,
              deadline: startedAt + budgetMs,
              app: data.app ?? 'default',
              context: data.context ?? {},
              idempotencyKey: options.idempotencyKey,
              reportProgress: options.reportProgress ?? IGNORE_PROGRESS,
            }),
          ),
          signal,
        );
        const encoded = encodeToolOutput(data.tool, output, options.maxResultBytes);
        if (!encoded.ok) return finish('error', encoded.message, attempt);
        // An MCP result with isError: the tool ran and said it failed; retrying is the model's call.
        return finish(encoded.failed ? 'error' : 'ok', encoded.content, attempt, encoded.mcp);
      } catch (thrown) {
        if (signal.aborted) return abortedResult(signal, finish, data, attempt);
        if (isRateLimitedError(thrown)) {
          options.onRateLimited?.(thrown.retryAfterMs, thrown.message);
          const why = `the service it calls refused it as rate limited (${thrown.message}); retry after ${thrown.retryAfterMs} ms`;
          return finish('not_started', messages.notStarted(data.tool, why), attempt);
        }
        const error = coerceError(thrown);
        if (attempt >= maxAttempts || error instanceof NonRetryableError) {
          return finish('error', messages.error(error.message), attempt);
        }
        const backoff = (tool.retry?.backoffMs ?? WORKER_DEFAULTS.retryBackoffMs) * 2 ** (attempt - 1);
        try {
          await sleep(backoff, signal);
        } catch {
          return abortedResult(signal, finish, data, attempt);
        }
      }
    }
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener('abort', onOuterAbort);
  }
}

function abortedResult(
  signal: AbortSignal,
  finish: (outcome: Outcome, content: string, attempts: number) => CallResult,
  data: ParsedJobData,
  attempt: number,
): CallResult {
  if (signal.reason instanceof TimeoutSignalReason) {
    return finish('timeout', messages.timeout(data.tool, data.timeoutMs), attempt);
  }
  const reason =
    signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'cancelled');
  return finish('cancelled', messages.cancelled(reason), attempt);
}

function attemptsFor(tool: AnyTool, data: ParsedJobData): number {
  if (data.failurePolicy !== 'retry' || !tool.retry) return 1;
  const maxRetries = data.maxRetries ?? tool.retry.attempts - 1;
  return 1 + Math.min(maxRetries, tool.retry.attempts - 1);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
