/**
 * Fair shares between apps for a flow-controlled tool: start-time fair queuing, with each call's
 * fair-share tag as its BullMQ priority (flow-store.ts's FAIR_TAGS). An app with 500 calls queued
 * takes one start in turn with every other app that has calls waiting, instead of holding the
 * queue for its whole backlog. Within an app, a batch's priority decides which of the app's calls
 * takes its next turn (higher first; the order sent within one priority).
 */
import { CALL_PRIORITY, type JobData } from '@toolq/shared';
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
  jobs: readonly { jobId: string; data: JobData | { chunk: JobData[] } }[],
): Promise<number[] | undefined> {
  const tool = toolOfRoute(queue);
  if (tool === undefined) return undefined;
  const fk = flowKeys(keys.prefix);
  // A call is enqueued alone on a tool queue (a chunk never goes there); one batch has one app and
  // one priority, but a re-run may bring several together.
  const groups = new Map<string, { app: string; priority: number; indexes: number[] }>();
  jobs.forEach(({ data }, i) => {
    const app = ('app' in data ? data.app : undefined) ?? PLAIN_PRODUCER_APP;
    const priority = ('priority' in data ? data.priority : undefined) ?? CALL_PRIORITY.default;
    const key = JSON.stringify([app, priority]);
    const group = groups.get(key) ?? { app, priority, indexes: [] };
    group.indexes.push(i);
    groups.set(key, group);
  });
  const priorities = new Array<number>(jobs.length).fill(1);
  for (const { app, priority, indexes } of groups.values()) {
    const jobIds = indexes.map((i) => jobs[i]?.jobId ?? '');
    const tags = await fairTags(redis, fk, tool, { app, priority, jobIds });
    indexes.forEach((jobIndex, k) => {
      priorities[jobIndex] = Math.max(1, Number(tags[k] ?? 1));
    });
  }
  return priorities;
}
