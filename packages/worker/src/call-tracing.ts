/**
 * A worker's spans of one call, children of the coordinator's `toolq.call` span whose context the
 * job carries: `toolq.queue_wait` (enqueue → start on this worker) and `toolq.run` (the tool's run,
 * retries included). Recorded once the call is done, from the times its result carries; off, one
 * variable read.
 */
import type { CallResult } from '@toolq/shared';
import { contextFrom, getTracer, type ParsedJobData, recordSpan } from '@toolq/shared/internal';

export function traceCall(
  data: ParsedJobData,
  result: CallResult,
  info: { pool: string; worker: string },
): void {
  if (!getTracer()) return;
  const parent = contextFrom(data.trace);
  const now = Date.now();
  const startedAt = result.startedAt ?? now;
  const attributes = {
    'toolq.tool': data.tool,
    'toolq.tool_use_id': data.toolUseId,
    'toolq.pool': info.pool,
    'toolq.worker': info.worker,
    // The dispatch's uid (the coordinator's batch span carries it beside the caller's batch id).
    ...(data.reply ? { 'toolq.batch.uid': data.reply.batchId, 'toolq.call.index': data.reply.index } : {}),
  };
  recordSpan({
    name: 'toolq.queue_wait',
    start: data.enqueuedAt,
    end: startedAt,
    attributes: { ...attributes, 'toolq.queue_wait_ms': Math.max(0, startedAt - data.enqueuedAt) },
    parent,
  });
  recordSpan({
    name: 'toolq.run',
    start: startedAt,
    end: result.finishedAt ?? now,
    attributes: {
      ...attributes,
      'toolq.outcome': result.outcome,
      'toolq.attempts': result.attempts,
      'toolq.run_ms': (result.finishedAt ?? now) - startedAt,
    },
    parent,
    ...(result.isError ? { error: result.outcome } : {}),
  });
}
