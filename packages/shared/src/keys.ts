/**
 * Every Redis key toolq uses, in one place. Keys that one Lua script touches together share a
 * Redis Cluster hash tag: a queue's keys are tagged with its pool (BullMQ's own keys are
 * `<prefix>:{<pool>}:*`), a batch record and its coordinator's reply stream with the coordinator id.
 */
import { toolOfRoute } from './flow/route.ts';

export interface Keys {
  readonly prefix: string;
  /**
   * BullMQ queue name for a route: a pool, a lane of one, or a flow-controlled tool's queue
   * (`tool=<name>`, flow/route.ts); with BullMQ's `prefix` option set to `prefix`.
   */
  queueName(route: string): string;
  /** The record of one dispatch, by its internal uid (see batch-names.ts). */
  batch(coordinatorId: string, uid: string): string;
  /** A batch's fleet-wide name: which coordinator dispatched `(app, batchName)` under which uid. */
  batchName(app: string, batchName: string): string;
  replyStream(coordinatorId: string): string;
  /** Hash: worker id → its heartbeat (WorkerInfo JSON; a current worker's names only a version of its tools). */
  workers(): string;
  /**
   * Hash: worker id → `{version, tools}`, the tool specs a heartbeat's `toolsVersion` names,
   * written only when they change. In the catalog's slot.
   */
  workerTools(): string;
  /** Hash: pool → WaitingPool JSON, for pools whose calls wait for a worker to start. */
  waitingPools(): string;
  /** Hash: pool → when its WaitingPool entry was last written, so readers re-read only changed entries. */
  waitingPoolVersions(): string;
  /** Pub/sub channel for cross-process cancellation of running calls. */
  cancelChannel(): string;
  /** Keys of their own in a coordinator's and a pool's slot, which readiness probes write (10 s TTL). */
  coordinatorProbe(coordinatorId: string): string;
  poolProbe(pool: string): string;
  /** In the catalog hash's slot: its hash tag is the catalog's whole key name. */
  workersProbe(): string;
  /** String: the worker that started an at-most-once call, by the call's idempotency key (delivery.ts). */
  started(idempotencyKey: string): string;
  /** Hash: `<queue> <jobId>` → BullMQ lock token, the jobs a worker is running (delivery.ts). */
  runningJobs(workerId: string): string;
  /** String: the coordinator sweeping dead workers' calls now (one at a time across the fleet). */
  deadWorkerSweep(): string;
  /** Hash: worker id → `<beatAt> <loopAt>`, written by a thread of the worker (liveness.ts). */
  liveness(): string;
  /** A cached result and the lock of its one run in flight, in one slot (cache.ts in the worker). */
  cacheEntry(hash: string): string;
  cacheLock(hash: string): string;
}

/** What may go into a Redis key or a BullMQ job id: the prefix, pools, coordinator ids, batch names, run ids. */
export const KEY_PART_PATTERN = /^[A-Za-z0-9_.-]{1,100}$/;

export function assertKeyPart(what: string, value: string): void {
  if (!KEY_PART_PATTERN.test(value)) {
    throw new Error(
      `${what} ${JSON.stringify(value)} must match ${KEY_PART_PATTERN} (letters, digits, _ . -)`,
    );
  }
}

/** The route (pool, lane or tool queue) of a BullMQ queue name: queueName's inverse, without its hash-tag braces. */
export function routeOfQueueName(queueName: string): string {
  return queueName.replace(/^\{(.*)\}$/, '$1');
}

export function createKeys(prefix: string): Keys {
  assertKeyPart('prefix', prefix);
  return {
    prefix,
    queueName: (route) => {
      if (toolOfRoute(route) === undefined) assertKeyPart('pool', route);
      return `{${route}}`;
    },
    batch: (coordinatorId, uid) => `${prefix}:{c.${coordinatorId}}:batch:${uid}`,
    batchName: (app, batchName) => `${prefix}:batch-name:${app}:${batchName}`,
    replyStream: (coordinatorId) => `${prefix}:{c.${coordinatorId}}:replies`,
    workers: () => `${prefix}:workers`,
    workerTools: () => `{${prefix}:workers}:tools`,
    waitingPools: () => `${prefix}:waiting-pools`,
    waitingPoolVersions: () => `{${prefix}:waiting-pools}:versions`,
    cancelChannel: () => `${prefix}:cancel`,
    coordinatorProbe: (coordinatorId) => `${prefix}:{c.${coordinatorId}}:probe`,
    // A colon after the tag's first part: BullMQ job ids cannot contain one, so no job owns it.
    poolProbe: (pool) => `${prefix}:{${pool}}:probe:ready`,
    workersProbe: () => `{${prefix}:workers}:probe`,
    started: (idempotencyKey) => `${prefix}:started:${idempotencyKey}`,
    runningJobs: (workerId) => `${prefix}:running:${workerId}`,
    deadWorkerSweep: () => `${prefix}:dead-worker-sweep`,
    liveness: () => `${prefix}:liveness`,
    cacheEntry: (hash) => `${prefix}:cache:{${hash}}`,
    cacheLock: (hash) => `${prefix}:cache:{${hash}}:lock`,
  };
}
