/**
 * A call's progress, from the worker that runs it to the coordinator that dispatched it: a pub/sub
 * message on that coordinator's progress channel. Fire and forget: a lost report is only a missed
 * update, and the call's result says how it ended.
 */
import { z } from 'zod';
import { parseJsonAs } from './json.ts';
import type { Redis } from './redis.ts';

export const progressMessageSchema = z.object({
  /** The dispatch's uid, as in the jobs' reply.batchId. */
  batchId: z.string().min(1).max(200),
  index: z.number().int().min(0),
  progress: z.number().finite(),
  total: z.number().finite().optional(),
  message: z.string().max(1_000).optional(),
});
export type ProgressMessage = z.infer<typeof progressMessageSchema>;

/** The channel of the coordinator whose reply stream is `replyStream` (a job's reply.streamKey). */
export function progressChannel(replyStream: string): string {
  return `${replyStream}:progress`;
}

export async function publishProgress(
  redis: Redis,
  channel: string,
  message: ProgressMessage,
): Promise<void> {
  await redis.publish(channel, JSON.stringify(message));
}

export function parseProgressMessage(raw: string): ProgressMessage | undefined {
  return parseJsonAs(progressMessageSchema, raw);
}
