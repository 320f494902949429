/**
 * Whether Redis takes toolq's writes where toolq writes them. A PING answers on a cluster node
 * that does not own toolq's keys (MOVED), on a cluster that lost a shard (CLUSTERDOWN), on a
 * demoted master (READONLY) and on a full one (OOM): all of them fail every call. So the probe is
 * a write to each slot in question: a SET of a key of its own that expires in 10 s.
 */
import { coerceError } from './errors.ts';
import { withTimeout } from './race.ts';
import type { Redis } from './redis.ts';
import { describeRedisFailure } from './redis-errors.ts';
import { firstLineOf } from './result-encoding.ts';

export type Readiness = { ready: true } | { ready: false; reason: string };

/**
 * Sends one harmless write per key (each in the slot it stands for) and answers within
 * `timeoutMs` whatever Redis does: connections wait through outages (maxRetriesPerRequest: null),
 * a readiness check must not.
 */
export async function probeRedis(
  redis: Redis,
  probeKeys: readonly string[],
  timeoutMs = 2_000,
): Promise<Readiness> {
  // A connection that cannot be made (a certificate it does not trust, a wrong password, no
  // sentinel reachable) only queues the probe: the reconnect's error is the reason worth telling.
  let lastError: string | undefined;
  const onError = (err: unknown) => {
    const error = coerceError(err);
    // A cluster client's "Failed to refresh slots cache." carries the node's own error inside.
    const inner = (error as { lastNodeError?: unknown }).lastNodeError;
    const cause = inner instanceof Error ? `: ${inner.message}` : '';
    lastError = firstLineOf(`${error.message}${cause}`);
  };
  redis.on('error', onError);
  redis.on('node error', onError);
  const probes = Promise.all(probeKeys.map((key) => redis.set(key, '1', 'PX', 10_000))).then(
    (): Readiness => ({ ready: true }),
    // A cluster client follows MOVED and retries CLUSTERDOWN itself; what reaches here it could not.
    (err: unknown): Readiness => ({ ready: false, reason: firstLineOf(coerceError(err).message) }),
  );
  const timedOut = (): Readiness => {
    const why = lastError ? ` (connection error: ${lastError})` : '';
    return { ready: false, reason: `Redis did not answer within ${timeoutMs} ms${why}` };
  };
  try {
    return await withTimeout(probes, timeoutMs, timedOut, { unref: true });
  } finally {
    redis.off('error', onError);
    redis.off('node error', onError);
  }
}

/** Why a process that writes to these keys' slots is not ready, or undefined when it is. */
export async function whyNotWritable(
  redis: Redis,
  probeKeys: readonly string[],
): Promise<string | undefined> {
  const probe = await probeRedis(redis, probeKeys);
  return probe.ready ? undefined : `Redis refuses writes: ${describeRedisFailure(new Error(probe.reason))}`;
}
