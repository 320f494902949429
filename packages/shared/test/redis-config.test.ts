/** Which Redis the environment selects, how a bad value is reported, and that secrets stay out of both. */
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedis, describeRedis, loadConfig, ToolqError } from '../src/index.ts';

const SECRET = 's3cret-never-logged';

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ToolqError);
    expect((err as ToolqError).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('Redis connection config', () => {
  it('defaults to standalone at REDIS_URL (or localhost)', () => {
    expect(loadConfig({}).redis).toEqual({ mode: 'standalone' });
    expect(loadConfig({ REDIS_URL: 'rediss://h:6380' }).redis).toMatchObject({
      mode: 'standalone',
      url: 'rediss://h:6380',
    });
  });

  it('REDIS_CLUSTER_NODES selects Redis Cluster over REDIS_URL, with credentials and TLS', () => {
    const { redis } = loadConfig({
      REDIS_URL: 'redis://ignored:6379',
      REDIS_CLUSTER_NODES: 'a.example:7000, 10.0.0.2:7001,[::1]:7002',
      REDIS_USERNAME: 'toolq',
      REDIS_PASSWORD: SECRET,
      REDIS_TLS: 'true',
    });
    expect(redis).toEqual({
      mode: 'cluster',
      nodes: [
        { host: 'a.example', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      username: 'toolq',
      password: SECRET,
      tls: true,
    });
  });

  it('REDIS_SENTINELS with REDIS_SENTINEL_MASTER selects Sentinel over REDIS_URL', () => {
    const { redis } = loadConfig({
      REDIS_URL: 'redis://ignored:6379',
      REDIS_SENTINELS: 's1:26379,s2:26379',
      REDIS_SENTINEL_MASTER: 'mymaster',
      REDIS_PASSWORD: SECRET,
      REDIS_SENTINEL_PASSWORD: 'other',
      REDIS_TLS: '0',
    });
    expect(redis).toEqual({
      mode: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      masterName: 'mymaster',
      password: SECRET,
      tls: false,
      sentinelCredentials: { password: 'other' },
    });
  });

  it('says which variable is wrong, and where', () => {
    expect(configError({ REDIS_CLUSTER_NODES: 'a:7000,nope' })).toMatch(
      /REDIS_CLUSTER_NODES: entry 2 \("nope"\) is not host:port/,
    );
    expect(configError({ REDIS_SENTINELS: 'a:99999' })).toMatch(/REDIS_SENTINELS: entry 1 \("a:99999"\)/);
    expect(configError({ REDIS_SENTINELS: 'a:26379' })).toMatch(/REDIS_SENTINEL_MASTER/);
    expect(configError({ REDIS_SENTINEL_MASTER: 'm' })).toMatch(/REDIS_SENTINELS/);
    expect(
      configError({ REDIS_CLUSTER_NODES: 'a:1', REDIS_SENTINELS: 'b:2', REDIS_SENTINEL_MASTER: 'm' }),
    ).toMatch(/REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set/);
    expect(configError({ REDIS_TLS: 'maybe' })).toMatch(/REDIS_TLS: use true or false/);
  });

  it('never puts a password in an error or a description', () => {
    expect(
      configError({ REDIS_PASSWORD: SECRET, REDIS_TLS: 'maybe', REDIS_URL: `redis://:${SECRET}@h:1` }),
    ).not.toContain(SECRET);
    const cluster = loadConfig({
      REDIS_CLUSTER_NODES: 'a:7000',
      REDIS_PASSWORD: SECRET,
      REDIS_USERNAME: 'u',
    }).redis;
    expect(describeRedis(cluster)).toBe('Redis Cluster a:7000 as u');
    const sentinel = loadConfig({
      REDIS_SENTINELS: 's:1',
      REDIS_SENTINEL_MASTER: 'm',
      REDIS_PASSWORD: SECRET,
    }).redis;
    expect(describeRedis(sentinel)).toBe('Sentinel master m via s:1');
    expect(describeRedis(`redis://user:${SECRET}@h:6379/0`)).toBe('redis://h:6379/0');
  });

  it('builds the matching ioredis client with what BullMQ needs (maxRetriesPerRequest: null)', () => {
    const cluster = createRedis({
      mode: 'cluster',
      nodes: [{ host: '127.0.0.1', port: 1 }],
      password: SECRET,
    });
    const standalone = createRedis(
      { mode: 'standalone', url: 'redis://127.0.0.1:1', password: SECRET },
      { lazyConnect: true },
    );
    try {
      expect(cluster).toBeInstanceOf(Cluster);
      expect((cluster as Cluster).options.redisOptions).toMatchObject({
        maxRetriesPerRequest: null,
        password: SECRET,
      });
      expect(standalone).toBeInstanceOf(Redis);
      expect((standalone as Redis).options).toMatchObject({ maxRetriesPerRequest: null, password: SECRET });
    } finally {
      cluster.on('error', () => undefined);
      cluster.disconnect();
      standalone.disconnect();
    }
  });
});
