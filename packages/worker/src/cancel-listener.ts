/**
 * This worker's side of cross-process cancellation: it keeps the AbortController of every call it
 * runs and aborts the ones a coordinator names. A lost message costs only wasted work: the
 * coordinator has already answered the call and drops a late result.
 */
import type { Logger } from '@toolq/shared';
import { type CancelMessage, parseCancelMessage, RecentSet, type Redis } from '@toolq/shared/internal';
import { WORKER_DEFAULTS } from './worker-options.ts';

export class RunningCalls {
  private readonly byBatch = new Map<string, Map<number, AbortController>>();
  /** Batches a coordinator cancelled lately: it has answered them, so their queued calls need not run. */
  private readonly cancelled = new RecentSet(WORKER_DEFAULTS.cancelledBatchesRemembered);

  /** `uid`: the dispatch's (the contract's reply.batchId, and a CancelMessage's batchId). */
  add(uid: string, index: number, controller: AbortController): () => void {
    let calls = this.byBatch.get(uid);
    if (!calls) {
      calls = new Map();
      this.byBatch.set(uid, calls);
    }
    const own = calls;
    own.set(index, controller);
    return () => {
      own.delete(index);
      if (own.size === 0) this.byBatch.delete(uid);
    };
  }

  wasCancelled(uid: string): boolean {
    return this.cancelled.has(uid);
  }

  cancel(message: CancelMessage): number {
    this.cancelled.add(message.batchId);
    const calls = this.byBatch.get(message.batchId);
    if (!calls) return 0;
    let count = 0;
    for (const [index, controller] of calls) {
      if (message.indexes && !message.indexes.includes(index)) continue;
      controller.abort(new Error(message.reason));
      count++;
    }
    return count;
  }

  abortAll(reason: Error): void {
    for (const calls of this.byBatch.values())
      for (const controller of calls.values()) controller.abort(reason);
  }
}

export async function listenForCancels(options: {
  subscriber: Redis;
  channel: string;
  running: RunningCalls;
  logger: Logger;
}): Promise<void> {
  const { subscriber, channel, running, logger } = options;
  subscriber.on('message', (from: string, raw: string) => {
    if (from !== channel) return;
    const message = parseCancelMessage(raw);
    if (!message) {
      logger.warn({ channel }, 'ignored a malformed cancel message');
      return;
    }
    const n = running.cancel(message);
    if (n > 0) logger.debug({ uid: message.batchId, cancelled: n }, 'cancelled running calls');
  });
  // ioredis subscribes again by itself after a reconnect.
  await subscriber.subscribe(channel);
}
