/**
 * The coordinator's spans of a batch: `toolq.batch` (child of whatever span is active, e.g. an
 * agent's model turn) and one `toolq.call` per call under it, whose context each job carries so
 * the worker's spans become its children. Spans are kept here until the batch is answered, and
 * only while tracing is on; off, startBatchTrace() returns undefined after one variable read.
 */
import type { TraceCarrier } from '@toolq/shared';
import { carrierOf, getTracer, markError, type Span, startSpan } from '@toolq/shared/internal';
import type { BatchResult } from './batch-result.ts';

interface OpenBatch {
  batch: Span;
  calls: Span[];
}

const open = new Map<string, OpenBatch>();

export interface BatchTrace {
  /** The context a call's job carries. */
  carrier(index: number): TraceCarrier | undefined;
}

export function startBatchTrace(
  /** The dispatch's uid (what jobs and replies name). */
  uid: string,
  /** The caller's name for the batch (the uid unless the caller named it). */
  batchName: string,
  calls: readonly { tool: string; toolUseId: string }[],
  startedAt: number,
): BatchTrace | undefined {
  if (!getTracer()) return undefined;
  const batch = startSpan('toolq.batch', {
    startTime: startedAt,
    attributes: { 'toolq.batch_id': batchName, 'toolq.batch.uid': uid, 'toolq.batch.calls': calls.length },
  });
  if (!batch) return undefined;
  const spans = calls.map(
    (call, index) =>
      startSpan(
        'toolq.call',
        {
          startTime: startedAt,
          attributes: {
            'toolq.tool': call.tool,
            'toolq.tool_use_id': call.toolUseId,
            'toolq.batch_id': batchName,
            'toolq.call.index': index,
          },
        },
        batch,
      ) as Span,
  );
  open.set(uid, { batch, calls: spans });
  return { carrier: (index) => (spans[index] ? carrierOf(spans[index]) : undefined) };
}

/** Ends the batch's spans at the times the batch result records. */
export function endBatchTrace(uid: string, startedAt: number, result: BatchResult): void {
  const entry = open.get(uid);
  if (!entry) return;
  open.delete(uid);
  result.calls.forEach((call, index) => {
    const span = entry.calls[index];
    if (!span) return;
    span.setAttributes({
      'toolq.outcome': call.outcome,
      'toolq.pool': call.pool ?? 'none',
      'toolq.attempts': call.attempts,
      ...(call.worker ? { 'toolq.worker': call.worker } : {}),
      ...(call.queueWaitMs === undefined ? {} : { 'toolq.queue_wait_ms': call.queueWaitMs }),
      ...(call.runMs === undefined ? {} : { 'toolq.run_ms': call.runMs }),
    });
    if (call.outcome !== 'ok') markError(span, call.outcome);
    span.end(startedAt + call.latencyMs);
  });
  entry.batch.setAttributes({
    'toolq.batch.wall_ms': result.wallMs,
    'toolq.batch.overhead_ms': result.overheadMs,
    'toolq.batch.errors': result.calls.filter((c) => c.outcome !== 'ok').length,
  });
  entry.batch.end(startedAt + result.wallMs);
}

/** Ends the spans of a batch that is not answered (its id was taken): nothing is kept. */
export function dropBatchTrace(uid: string): void {
  const entry = open.get(uid);
  if (!entry) return;
  open.delete(uid);
  markError(entry.batch, 'batch id already used');
  for (const span of entry.calls) span.end();
  entry.batch.end();
}
