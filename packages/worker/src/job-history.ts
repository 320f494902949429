/**
 * A completed job a queue keeps for the admin page's recent history (the coordinator's
 * TOOLQ_JOB_HISTORY_MS) keeps its data too. Before the job completes, the worker drops what must
 * not outlive the call there: the caller context (it leaves Redis with the batch), and an input
 * past HISTORY_INPUT_CHARS (cut to its start, so that the history's memory stays bounded whatever
 * the inputs). One Redis write, only for a job that is kept and carries either; a job removed on
 * completion, or small and without context, costs nothing.
 */
import type { JobChunk, JobData, Logger } from '@toolq/shared';
import type { Job } from 'bullmq';

/** Characters of a kept job's input (as JSON) shown on the admin page; longer ones are cut. */
export const HISTORY_INPUT_CHARS = 4_096;

/**
 * At least JSON.stringify(value).length (a string's characters each escaped at worst, a number at
 * its longest), counted only until past `limit`: a small input is measured without a copy.
 */
export function jsonLengthBound(value: unknown, limit: number, depth = 0): number {
  if (value === null || value === undefined || typeof value === 'boolean') return 5;
  if (typeof value === 'number') return 24;
  if (typeof value === 'string') return value.length * 6 + 2;
  if (typeof value !== 'object' || depth > 32) return Number.POSITIVE_INFINITY; // stringify decides
  let n = 2;
  if (Array.isArray(value)) {
    for (const item of value) {
      n += jsonLengthBound(item, limit - n, depth + 1) + 1;
      if (n > limit) return n;
    }
    return n;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const item = (value as Record<string, unknown>)[key];
    n += key.length * 6 + 4 + jsonLengthBound(item, limit - n, depth + 1);
    if (n > limit) return n;
  }
  return n;
}

/** The call as kept, or undefined when it can be kept as it is. */
function trimCall(call: JobData): JobData | undefined {
  if (call.context === undefined && jsonLengthBound(call.input, HISTORY_INPUT_CHARS) <= HISTORY_INPUT_CHARS)
    return undefined;
  const { context, ...rest } = call;
  const text = JSON.stringify(call.input) ?? '';
  const long = text.length > HISTORY_INPUT_CHARS;
  if (context === undefined && !long) return undefined;
  if (!long) return rest;
  return {
    ...rest,
    input: {
      toolq_history: `the input was ${text.length} characters of JSON; the first ${HISTORY_INPUT_CHARS} are kept`,
      start: text.slice(0, HISTORY_INPUT_CHARS),
    },
  };
}

/** The job's data as kept, or undefined when nothing needs changing. */
export function historyData(data: JobData | JobChunk): JobData | JobChunk | undefined {
  if ('chunk' in data) {
    const calls = data.chunk.map((call) => trimCall(call));
    if (calls.every((c) => c === undefined)) return undefined;
    return { ...data, chunk: data.chunk.map((call, i) => calls[i] ?? call) };
  }
  return trimCall(data);
}

/**
 * Trims a coordinator's job that BullMQ keeps once completed (see the top); a failed write is
 * logged, not thrown. A plain producer's job (no reply target) is its producer's to keep as it
 * likes. Undefined (no promise) when nothing needs writing: most jobs.
 */
export function trimForHistory(job: Job<JobData | JobChunk>, logger: Logger): Promise<void> | undefined {
  if (job.opts.removeOnComplete === true) return undefined;
  if (!('chunk' in job.data) && job.data.reply === undefined) return undefined;
  const kept = historyData(job.data);
  if (!kept) return undefined;
  return job.updateData(kept).catch((err: Error) => {
    logger.warn({ err: err.message, job: job.id }, "could not drop a kept job's context and long input");
  });
}
