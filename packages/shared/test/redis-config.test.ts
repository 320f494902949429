/** Which Redis the environment selects, how a bad value is reported, and that secrets stay out of both. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestTls, type TestTls } from '../../../test-support/tls.ts';
import { loadConfig, ToolqError } from '../src/index.ts';
import { createRedis, describeRedis } from '../src/internal.ts';

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

describe('REDIS_TLS_CA_FILE', () => {
  let tls: TestTls;
  beforeAll(async () => {
    tls = await makeTestTls();
  });
  afterAll(() => tls?.remove());

  it('is read once into every mode and implies TLS', () => {
    const standalone = loadConfig({ REDIS_URL: 'redis://h:6379', REDIS_TLS_CA_FILE: tls.caFile }).redis;
    expect(standalone).toEqual({ mode: 'standalone', url: 'redis://h:6379', tls: { ca: tls.ca } });
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_TLS_CA_FILE: tls.caFile }).redis;
    expect(cluster).toMatchObject({ mode: 'cluster', tls: { ca: tls.ca } });
    const sentinel = loadConfig({
      REDIS_SENTINELS: 's:26379',
      REDIS_SENTINEL_MASTER: 'm',
      REDIS_TLS: 'true',
      REDIS_TLS_CA_FILE: tls.caFile,
    }).redis;
    expect(sentinel).toMatchObject({ mode: 'sentinel', tls: { ca: tls.ca } });
    expect(describeRedis(sentinel)).toBe('Sentinel master m via s:26379 (TLS, private CA)');
    expect(describeRedis(cluster)).toBe('Redis Cluster a:7000 (TLS, private CA)');
  });

  it('says which variable and path are wrong, never what the file holds', () => {
    const missing = join(tls.dir, 'no-such.pem');
    expect(configError({ REDIS_TLS_CA_FILE: missing })).toBe(
      `invalid environment: REDIS_TLS_CA_FILE: ${missing} cannot be read (ENOENT)`,
    );
    expect(configError({ REDIS_TLS_CA_FILE: tls.dir })).toMatch(
      /REDIS_TLS_CA_FILE: .* cannot be read \(EISDIR\)/,
    );
    const keyOnly = join(tls.dir, 'key-only.pem');
    writeFileSync(keyOnly, `${SECRET}\n`);
    const noPem = configError({ REDIS_TLS_CA_FILE: keyOnly });
    expect(noPem).toBe(
      `invalid environment: REDIS_TLS_CA_FILE: ${keyOnly} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
    const broken = join(tls.dir, 'broken.pem');
    writeFileSync(
      broken,
      `${tls.ca}-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n`,
    );
    expect(configError({ REDIS_TLS_CA_FILE: broken })).toMatch(/not a certificate \(certificate 2\)$/);
    expect(configError({ REDIS_TLS: 'false', REDIS_TLS_CA_FILE: tls.caFile })).toMatch(
      /REDIS_TLS is false but REDIS_TLS_CA_FILE is set/,
    );
  });

  it('says (TLS) for a rediss:// URL too', () => {
    expect(describeRedis('rediss://:pw@h:6380')).toBe('rediss://h:6380 (TLS)');
    expect(describeRedis(loadConfig({ REDIS_URL: 'rediss://h:6380' }).redis)).toBe('rediss://h:6380 (TLS)');
    expect(describeRedis(loadConfig({ REDIS_URL: 'redis://h:6379' }).redis)).toBe('redis://h:6379');
  });

  it('reaches the ioredis options of every mode (a rediss:// URL keeps the CA)', () => {
    const withCa = { tls: { ca: tls.ca } };
    const standalone = createRedis(
      { mode: 'standalone', url: 'rediss://127.0.0.1:1', ...withCa },
      { lazyConnect: true },
    );
    const plainUrl = createRedis({ mode: 'standalone', url: 'rediss://127.0.0.1:1' }, { lazyConnect: true });
    const sentinel = createRedis(
      { mode: 'sentinel', sentinels: [{ host: '127.0.0.1', port: 1 }], masterName: 'm', ...withCa },
      { lazyConnect: true },
    );
    const cluster = createRedis({ mode: 'cluster', nodes: [{ host: '127.0.0.1', port: 1 }], ...withCa });
    try {
      expect((standalone as Redis).options.tls).toEqual({ ca: tls.ca });
      expect((plainUrl as Redis).options.tls).toBe(true);
      expect((sentinel as Redis).options).toMatchObject({
        tls: { ca: tls.ca },
        sentinelTLS: { ca: tls.ca },
        enableTLSForSentinelMode: true,
      });
      expect((cluster as Cluster).options.redisOptions?.tls).toEqual({ ca: tls.ca });
    } finally {
      for (const client of [standalone, plainUrl, sentinel, cluster]) {
        client.on('error', () => undefined);
        client.disconnect();
      }
    }
  });
});
