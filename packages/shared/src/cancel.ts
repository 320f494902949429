/**
 * Cross-process cancellation messages. BullMQ's `worker.cancelJob` only reaches jobs running in
 * the same process, so coordinators publish on a pub/sub channel that every worker listens to.
 */

import { z } from 'zod';
import { parseJsonAs } from './json.ts';
import type { Redis } from './redis.ts';

export const cancelMessageSchema = z.object({
  /** The dispatch's uid (not the caller's batch name), as in the jobs' reply.batchId. */
  batchId: z.string(),
  /** Calls to cancel; all of the batch's calls when absent. */
  indexes: z.array(z.number().int()).optional(),
  reason: z.string().max(1000),
});
export type CancelMessage = z.infer<typeof cancelMessageSchema>;

export async function publishCancel(redis: Redis, channel: string, message: CancelMessage): Promise<void> {
  await redis.publish(channel, JSON.stringify(message));
}

export function parseCancelMessage(raw: string): CancelMessage | undefined {
  return parseJsonAs(cancelMessageSchema, raw);
}
