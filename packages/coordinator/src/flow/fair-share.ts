/**
 * Fair shares between apps for a flow-controlled tool: start-time fair queuing, with each call's
 * fair-share tag as its BullMQ priority (flow-store.ts's FAIR_TAGS). An app with 500 calls queued
 * takes one start in turn with every other app that has calls waiting, instead of holding the
 * queue for its whole backlog.
 */
import type { JobData } from '@toolq/shared';
import {
  fairTags,
  flowKeys,
  type Keys,
  PLAIN_PRODUCER_APP,
  type Redis,
  toolOfRoute,
} from '@toolq/shared/internal';

/** The priorities of one queue's jobs (one call each on a tool queue), or undefined for a pool or lane. */
export async function fairPriorities(
  redis: Redis,
  keys: Keys,
  queue: string,
  jobs: readonly { data: JobData | { chunk: JobData[] } }[],
): Promise<number[] | undefined> {
  const tool = toolOfRoute(queue);
  if (tool === undefined) return undefined;
  const fk = flowKeys(keys.prefix);
  // One batch is one app's: a call enqueued alone (a chunk never goes to a tool queue).
  const byApp = new Map<string, number[]>();
  jobs.forEach(({ data }, i) => {
    const app = ('app' in data ? data.app : undefined) ?? PLAIN_PRODUCER_APP;
    byApp.set(app, [...(byApp.get(app) ?? []), i]);
  });
  const priorities = new Array<number>(jobs.length).fill(1);
  for (const [app, indexes] of byApp) {
    const tags = await fairTags(redis, fk, tool, app, indexes.length);
    indexes.forEach((jobIndex, k) => {
      priorities[jobIndex] = Math.max(1, Number(tags[k] ?? 1));
    });
  }
  return priorities;
}
