/**
 * A Redis Cluster over TLS with a private CA (3 masters, 1 replica each, TLS-only: clients,
 * replication and the cluster bus), password on every node: the CLI processes configured by
 * REDIS_CLUSTER_NODES + REDIS_PASSWORD + REDIS_TLS_CA_FILE answer a mixed batch. Failover on a
 * cluster is cluster.test.ts's subject; this checks that every node connection speaks TLS.
 */
import { fileURLToPath } from 'node:url';
import { createRedis, probeRedis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { expectMixedBatchAnswered } from '../../../test-support/mixed-batch.ts';
import { type RedisCluster, startRedisCluster } from '../../../test-support/redis-cluster.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { makeTestTls, type TestTls } from '../../../test-support/tls.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const TEST_TOOLS = fileURLToPath(new URL('../../../test-support/test-tools.ts', import.meta.url));

let tls: TestTls;
let otherTls: TestTls;
let cluster: RedisCluster;
let workers: WorkerProcess[] = [];

beforeAll(async () => {
  [tls, otherTls] = await Promise.all([makeTestTls(), makeTestTls()]);
  cluster = await startRedisCluster({ tls });
  const redisUrl = 'redis://127.0.0.1:1'; // ignored: REDIS_CLUSTER_NODES wins
  workers = await Promise.all([
    startWorkerProcess({ redisUrl, pool: 'alpha', tools: 'diagnostics', env: cluster.env }),
    startWorkerProcess({ redisUrl, pool: 'beta', tools: TEST_TOOLS, env: cluster.env }),
  ]);
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await cluster?.stop();
  tls?.remove();
  otherTls?.remove();
});

describe('a Redis Cluster over TLS', () => {
  it('the CLIs (REDIS_CLUSTER_NODES + REDIS_PASSWORD + REDIS_TLS_CA_FILE) answer a mixed batch', async () => {
    expect(cluster.env).toMatchObject({ REDIS_TLS_CA_FILE: tls.caFile });
    const coordinator = await startCoordinatorProcess(cluster.env);
    try {
      await expectMixedBatchAnswered(coordinator.url);
    } finally {
      await stopChild(coordinator.child);
    }
  });

  it('a client trusting another CA is not ready: the slots cannot be read', async () => {
    const redis = createRedis({ ...cluster.config, tls: { ca: otherTls.ca } });
    redis.on('error', () => undefined);
    try {
      // As behind Sentinel, ioredis's client for the slots lookup drops the TLS error itself.
      expect(await probeRedis(redis, ['toolq:{c.x}:probe'])).toMatchObject({
        ready: false,
        reason: expect.stringMatching(
          /connection error: (Failed to refresh slots cache\.: )?Connection is closed\.\)$/,
        ),
      });
    } finally {
      redis.disconnect();
    }
  });
});
