/**
 * ioredis's Cluster client with a `connect()` whose promise always settles.
 *
 * In ioredis 6.0.0 a connect attempt that reaches a node but fails the ready check (CLUSTER INFO
 * says `cluster_state:fail`, as every node does for a few seconds while a dead master's replica is
 * promoted) disconnects and tries again, and the promise that attempt returned never settles: the
 * retry that succeeds settles only its own (the known upstream problem of redis/ioredis PR #741).
 *
 * BullMQ awaits that promise. Its worker races each BZPOPMIN against a watchdog (block timeout +
 * 1 s); when the watchdog fires (the master the BZPOPMIN was sent to died) it disconnects the
 * blocking connection and awaits `connect()` before the worker looks for a job again. During a
 * failover that connect's ready check fails, so a worker idle when its queue's master was killed
 * waited forever: no error, its connection `ready`, no job of that queue taken (4 of 9 runs before
 * this fix; packages/worker/test/cluster-idle-failover.test.ts).
 *
 * Here `connect()` also resolves when the client next becomes `ready` (whichever attempt got it
 * there) and rejects when it ends, which is what its callers wait for.
 */
import { Cluster, type ClusterNode, type ClusterOptions } from 'ioredis';

/**
 * One wait per client for its next `ready` or `end`, shared by every connect() call pending on it
 * (a cluster that stays down would otherwise add listeners at each retry). A WeakMap, not a field:
 * ioredis calls connect() from its constructor, before a subclass's fields exist.
 */
const nextReady = new WeakMap<Cluster, Promise<void>>();

function readyOrEnd(cluster: Cluster): Promise<void> {
  let wait = nextReady.get(cluster);
  if (!wait) {
    wait = new Promise<void>((resolve, reject) => {
      const settle = () => {
        cluster.off('ready', onReady);
        cluster.off('end', onEnd);
        nextReady.delete(cluster);
      };
      // ioredis emits a status one tick after setting it: an event whose status is already gone
      // (the `end` of a disconnect() called just before this connect()) is not about this attempt.
      const onReady = () => {
        if (cluster.status !== 'ready') return;
        settle();
        resolve();
      };
      const onEnd = () => {
        if (cluster.status !== 'end') return;
        settle();
        reject(new Error('Connection is closed.'));
      };
      cluster.on('ready', onReady);
      cluster.on('end', onEnd);
    });
    // Nobody may be waiting any more when it settles (the attempt itself settled first).
    wait.catch(() => undefined);
    nextReady.set(cluster, wait);
  }
  return wait;
}

/**
 * toolq reads replies in ioredis's default ("legacy") form, the only one a `Cluster` (of the
 * default type) may be built with; no toolq connection sets another.
 */
function legacyReplies(
  options: ClusterOptions,
): ClusterOptions & { redisOptions?: { replyMapping?: 'legacy' } } {
  const { redisOptions, ...cluster } = options;
  if (!redisOptions) return cluster;
  const { replyMapping: _ignored, ...rest } = redisOptions;
  return { ...cluster, redisOptions: rest };
}

export class SettlingCluster extends Cluster {
  /** Kept for duplicate(): ioredis keeps its own copy private. */
  readonly #startupNodes: readonly ClusterNode[];

  constructor(startupNodes: ClusterNode[], options: ClusterOptions = {}) {
    super(startupNodes, legacyReplies(options));
    this.#startupNodes = [...startupNodes];
  }

  override connect(): Promise<void> {
    // Listen before the attempt starts: its status events are emitted on a later tick.
    const ready = readyOrEnd(this);
    return Promise.race([super.connect(), ready]);
  }

  /** A duplicate (BullMQ's blocking connection is one) must settle its connect() too. */
  override duplicate(overrideStartupNodes: ClusterNode[] = [], overrideOptions?: ClusterOptions): Cluster {
    // The same merge as ioredis's own duplicate(), into this class.
    const startupNodes = overrideStartupNodes.length > 0 ? overrideStartupNodes : [...this.#startupNodes];
    const options: ClusterOptions = { ...this.options, ...overrideOptions };
    if (this.options.redisOptions && overrideOptions?.redisOptions) {
      options.redisOptions = { ...this.options.redisOptions, ...overrideOptions.redisOptions };
    }
    return new SettlingCluster(startupNodes, options);
  }
}
