/**
 * Every Redis connection toolq opens comes from here, built from one parsed connection config:
 * a standalone URL, a Redis Cluster's seed nodes, or Sentinels watching a named master.
 */
import type { ConnectionOptions } from 'node:tls';
import { type Cluster, type ClusterOptions, Redis as IORedis, type RedisOptions } from 'ioredis';
import { SettlingCluster } from './settling-cluster.ts';

/**
 * A toolq connection: one Redis (standalone or behind Sentinel) or a Redis Cluster. The commands
 * toolq sends exist on both; code that must tell them apart uses `isClusterConnection()`.
 */
export type Redis = IORedis | Cluster;

export interface RedisAddress {
  host: string;
  port: number;
}

/** Credentials for the data nodes (and, for Sentinel, for the sentinels unless set apart). */
export interface RedisCredentials {
  username?: string | undefined;
  password?: string | undefined;
}

export type RedisConnectionConfig =
  | ({ mode: 'standalone' /** Default `redis://127.0.0.1:6379`. */; url?: string | undefined } & RedisCommon)
  | ({ mode: 'cluster'; nodes: readonly RedisAddress[] } & RedisCommon)
  | ({
      mode: 'sentinel';
      sentinels: readonly RedisAddress[];
      /** The name the sentinels monitor the master under. */
      masterName: string;
      /** The sentinels' own credentials, when they differ from the data nodes'. */
      sentinelCredentials?: RedisCredentials | undefined;
    } & RedisCommon);

/** TLS beyond on/off. */
export interface RedisTlsOptions {
  /**
   * PEM certificates (a private or internal CA) trusted instead of Node's built-in CAs. The
   * server's name is still checked against its certificate: there is no way to skip verification.
   */
  ca?: string | undefined;
}

interface RedisCommon extends RedisCredentials {
  /**
   * TLS to every node (and to the sentinels): `true`, or `{ ca }` to trust a private CA. A
   * `rediss://` URL turns it on by itself.
   */
  tls?: boolean | RedisTlsOptions | undefined;
}

/** What `createRedis` takes: a parsed config, or (as before) a standalone URL or nothing. */
export type RedisTarget = RedisConnectionConfig | string | undefined;

function toConfig(target: RedisTarget): RedisConnectionConfig {
  return typeof target === 'object' ? target : { mode: 'standalone', url: target };
}

/**
 * A command that failed on a replica that used to be the master (a Sentinel failover while
 * connected): reconnecting asks the sentinels again and re-sends the command to the new master.
 */
const reconnectOnReadonly = (err: Error): 2 | false => (err.message.startsWith('READONLY') ? 2 : false);

/**
 * How many redirections and retries one command may take on a cluster, and how long apart: a
 * master's failover takes a few seconds (node timeout + election), and a command that waits
 * through it is better than one that fails, since deadlines are enforced by the coordinator's
 * timers. 100 × 200 ms rides out about 20 s of cluster trouble.
 */
const CLUSTER_RETRY_DELAY_MS = 200;
const CLUSTER_MAX_REDIRECTIONS = 100;

/**
 * A Redis connection for toolq. `maxRetriesPerRequest: null` is what BullMQ requires, and it
 * means commands wait through a Redis restart or a failover instead of failing; deadlines are
 * enforced by timers in the coordinator, never by waiting on Redis. A blocking reader (XREAD BLOCK,
 * BullMQ's worker) gets its own connection: `duplicateConnection()`.
 */
export function createRedis(target: RedisTarget, options: RedisOptions = {}): Redis {
  const config = toConfig(target);
  const credentials = {
    ...(config.username ? { username: config.username } : {}),
    ...(config.password ? { password: config.password } : {}),
  };
  const tlsOptions = tlsOf(config);
  // Absent unless configured: a `rediss://` URL then gets ioredis's own `tls: true` (its URL
  // parser fills in only what the options leave unset, so an object given here wins over it).
  const tls = tlsOptions ? { tls: tlsOptions } : {};
  const base: RedisOptions = {
    maxRetriesPerRequest: null,
    // Reconnect quickly after a Redis restart, backing off to at most 1 s between tries.
    retryStrategy: (times) => Math.min(50 * times, 1000),
    reconnectOnError: reconnectOnReadonly,
  };
  switch (config.mode) {
    case 'standalone': {
      const merged: RedisOptions = { ...base, ...credentials, ...tls, ...options };
      return config.url ? new IORedis(config.url, merged) : new IORedis(merged);
    }
    case 'sentinel': {
      const sentinelCredentials = config.sentinelCredentials ?? credentials;
      return new IORedis({
        ...base,
        ...credentials,
        ...tls,
        sentinels: config.sentinels.map(({ host, port }) => ({ host, port })),
        name: config.masterName,
        ...(sentinelCredentials.username ? { sentinelUsername: sentinelCredentials.username } : {}),
        ...(sentinelCredentials.password ? { sentinelPassword: sentinelCredentials.password } : {}),
        // `tls` is for the master and replicas the sentinels name, `sentinelTLS` for the sentinels.
        ...(tlsOptions ? { enableTLSForSentinelMode: true, sentinelTLS: tlsOptions } : {}),
        // No failoverDetector. In ioredis 6.0.0 the detector of the previous connection stays
        // subscribed while the client reconnects; a late +switch-master that reaches it while the
        // connector asks a sentinel for the master aborts that connect, and the client ends for
        // good ("Connection is closed." for every later command: seen once in a full test run).
        // Patched locally it moved clients off the old master ~1 s after a graceful failover
        // instead of 10-13 s later, but lost as many calls (1, 0, 1, 0 vs 0, 0, 1 of ~1,400;
        // docs/scaling.md). A READONLY reply (reconnectOnError) and the connections the demoted
        // master drops both ask the sentinels again.
        sentinelRetryStrategy: (times) => Math.min(100 * times, 1000),
        ...options,
      });
    }
    case 'cluster': {
      const { retryStrategy: _perNode, ...redisOptions } = { ...base, ...credentials, ...tls, ...options };
      const clusterOptions: ClusterOptions = {
        redisOptions,
        clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
        retryDelayOnFailover: CLUSTER_RETRY_DELAY_MS,
        retryDelayOnClusterDown: CLUSTER_RETRY_DELAY_MS,
        retryDelayOnTryAgain: CLUSTER_RETRY_DELAY_MS,
        maxRedirections: CLUSTER_MAX_REDIRECTIONS,
        // No clusterNodeRetryStrategy: a node connection that closes must fail its commands (the
        // cluster client then refreshes the slots and re-sends them to the promoted replica);
        // reconnecting to a dead master held them in that node's offline queue forever (measured).
      };
      // Not ioredis's Cluster: its connect() may never settle after a failover (settling-cluster.ts).
      return new SettlingCluster(
        config.nodes.map(({ host, port }) => ({ host, port })),
        clusterOptions,
      );
    }
  }
}

/** Node TLS options for a config with TLS on, else undefined. A fresh object per connection. */
function tlsOf(config: RedisConnectionConfig): ConnectionOptions | undefined {
  if (!config.tls) return undefined;
  return config.tls === true || config.tls.ca === undefined ? {} : { ca: config.tls.ca };
}

/** Whether connections to this target use TLS (by the config or a `rediss://` URL). */
export function usesTls(target: RedisTarget): boolean {
  const config = toConfig(target);
  return Boolean(config.tls) || (config.mode === 'standalone' && /^rediss:/i.test(config.url ?? ''));
}

/** A second connection with the same target and options, for a blocking reader. */
export function duplicateConnection(redis: Redis): Redis {
  return isClusterConnection(redis) ? redis.duplicate() : redis.duplicate();
}

export function isClusterConnection(redis: Redis): redis is Cluster {
  return redis.isCluster;
}

/** Closes a connection whatever its state; never throws (used on shutdown paths). */
export async function closeRedis(redis: Redis): Promise<void> {
  try {
    if (redis.status === 'end') return;
    if (redis.status === 'ready') await redis.quit();
    else redis.disconnect();
  } catch {
    redis.disconnect();
  }
}

/** Where toolq connects, for logs and messages: never a password. */
export function describeRedis(target: RedisTarget): string {
  const config = toConfig(target);
  const user = config.username ? ` as ${config.username}` : '';
  const privateCa = typeof config.tls === 'object' && config.tls.ca !== undefined;
  const tls = usesTls(config) ? (privateCa ? ' (TLS, private CA)' : ' (TLS)') : '';
  const list = (addresses: readonly RedisAddress[]) => addresses.map((a) => `${a.host}:${a.port}`).join(',');
  switch (config.mode) {
    case 'standalone':
      return `${describeUrl(config.url)}${user}${tls}`;
    case 'cluster':
      return `Redis Cluster ${list(config.nodes)}${user}${tls}`;
    case 'sentinel':
      return `Sentinel master ${config.masterName} via ${list(config.sentinels)}${user}${tls}`;
  }
}

function describeUrl(url: string | undefined): string {
  if (!url) return 'redis://127.0.0.1:6379';
  try {
    const u = new URL(url);
    u.password = '';
    u.username = '';
    return u.toString();
  } catch {
    return '(unparseable REDIS_URL)';
  }
}
