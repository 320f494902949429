/**
 * Routing by tool. Every worker consumes two queues: its pool's shared queue `{<pool>}` and its
 * lane `{<pool>.t<hash of its tool names>}`, which only workers serving exactly the same tools
 * share. While every live worker of a pool serves a tool, its calls go to the pool's queue (the
 * usual case, and the queue plain producers know); when the pool is mixed (a rolling
 * deploy that adds a tool, two modules in one pool) they go to a lane whose workers all serve it.
 * A worker that still receives a call for a tool it lacks gives the job back (see the worker).
 */
import { createHash } from 'node:crypto';

export function laneOf(pool: string, toolNames: readonly string[]): string {
  const hash = createHash('sha256')
    .update([...toolNames].sort().join('\n'))
    .digest('hex')
    .slice(0, 10);
  // Queue names are at most 100 characters (keys.ts); the hash keeps a cut pool name unique enough.
  return `${pool.slice(0, 88)}.t${hash}`;
}
