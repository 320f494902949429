/**
 * `ctx.reportProgress()` on the worker: sends a call's progress to the coordinator that
 * dispatched it, at most `burst` reports at once and then one every `intervalMs` per call (the
 * latest value wins), so that a tool reporting in a tight loop floods neither Redis nor the client.
 */
import type { Logger } from '@toolq/shared';
import { type ParsedJobData, progressChannel, publishProgress, type Redis } from '@toolq/shared/internal';
import { WORKER_DEFAULTS } from './worker-options.ts';

export type ReportProgress = (progress: number, total?: number, message?: string) => void;

interface Report {
  progress: number;
  total?: number;
  message?: string;
}

export interface CallProgress {
  report: ReportProgress;
  /**
   * The call ended: a report still waiting is dropped (its result says more); resolves once the
   * reports sent are published, so that they reach the coordinator before the result does.
   * Undefined when the call reported nothing (no promise to wait on: most calls).
   */
  close(): Promise<void> | undefined;
}

const NOOP: CallProgress = { report: () => undefined, close: () => undefined };

interface ProgressOptions {
  redis: Redis;
  data: ParsedJobData;
  logger: Logger;
  burst?: number;
  intervalMs?: number;
}

/**
 * A call's progress reports. Most tools never report: the reporter's state is made at the first
 * report, so that such a call costs two small closures and no promise.
 */
export function callProgress(options: ProgressOptions): CallProgress {
  const reply = options.data.reply;
  if (!reply) return NOOP; // a plain producer's call has no coordinator to tell
  let reporter: CallProgress | undefined;
  let closed = false;
  return {
    report: (progress, total, message) => {
      if (closed) return; // a tool reporting after its call ended
      reporter ??= progressReporter(options, reply);
      reporter.report(progress, total, message);
    },
    close: () => {
      closed = true;
      return reporter?.close();
    },
  };
}

function progressReporter(
  options: ProgressOptions,
  reply: NonNullable<ParsedJobData['reply']>,
): CallProgress {
  const { redis, logger } = options;
  const channel = progressChannel(reply.streamKey);
  const burst = options.burst ?? WORKER_DEFAULTS.progressBurst;
  const intervalMs = options.intervalMs ?? WORKER_DEFAULTS.progressIntervalMs;
  let tokens = burst;
  let refilledAt = Date.now();
  let last = Number.NEGATIVE_INFINITY;
  let waiting: Report | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const publishing = new Set<Promise<void>>();

  const send = (report: Report) => {
    tokens--;
    const published = publishProgress(redis, channel, {
      batchId: reply.batchId,
      index: reply.index,
      ...report,
    })
      .catch((err: Error) => logger.debug({ err: err.message }, 'could not publish progress'))
      .finally(() => publishing.delete(published));
    publishing.add(published);
  };
  const refill = () => {
    const now = Date.now();
    const earned = Math.floor((now - refilledAt) / intervalMs);
    if (earned > 0) {
      tokens = Math.min(burst, tokens + earned);
      refilledAt += earned * intervalMs;
    }
    if (tokens >= burst) refilledAt = now;
  };
  const flush = () => {
    timer = undefined;
    if (closed || !waiting) return;
    refill();
    if (tokens > 0) {
      send(waiting);
      waiting = undefined;
    } else timer = setTimeout(flush, intervalMs);
  };

  return {
    report: (progress, total, message) => {
      // MCP requires progress to grow; a report that does not (or is no number) is dropped.
      if (closed || typeof progress !== 'number' || !Number.isFinite(progress) || progress <= last) return;
      last = progress;
      const report: Report = {
        progress,
        ...(typeof total === 'number' && Number.isFinite(total) ? { total } : {}),
        ...(typeof message === 'string' ? { message: message.slice(0, 1_000) } : {}),
      };
      refill();
      if (tokens > 0 && !waiting) {
        send(report);
        return;
      }
      waiting = report;
      timer ??= setTimeout(flush, intervalMs);
    },
    close: async () => {
      closed = true;
      clearTimeout(timer);
      await Promise.all(publishing);
    },
  };
}
