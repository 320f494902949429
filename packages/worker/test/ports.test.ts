/**
 * Where the processes listen by default, and what they say when the port is taken: several
 * workers share a host as started with no flags, and a clash is one line naming the setting.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { spawnWorkerProcess, startWorkerProcess } from '../../../test-support/worker-process.ts';

let redis: RedisServer;
let taken: Server;
let takenPort: number;

beforeAll(async () => {
  redis = await startRedisServer();
  taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const address = taken.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  takenPort = address.port;
});

afterAll(async () => {
  await new Promise((resolve) => taken?.close(resolve));
  await redis?.stop();
});

describe('worker metrics port', () => {
  it('lets two workers started with the defaults share a host, each on its own loopback port', async () => {
    const first = await startWorkerProcess({ redisUrl: redis.url, metrics: 'defaults' });
    const second = await startWorkerProcess({ redisUrl: redis.url, metrics: 'defaults' });
    try {
      const urls = [first.metricsUrl, second.metricsUrl].map((u) => new URL(String(u)));
      expect(urls.map((u) => u.hostname)).toEqual(['127.0.0.1', '127.0.0.1']);
      expect(urls[0]?.port).not.toBe(urls[1]?.port);
      for (const url of urls) expect((await fetch(new URL('/healthz', url))).status).toBe(200);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });

  it('says in one line which setting to change when the port is taken', async () => {
    const worker = spawnWorkerProcess({
      redisUrl: redis.url,
      metrics: 'defaults',
      env: { TOOLQ_METRICS_PORT: String(takenPort) },
    });
    expect(await worker.exited).toBe(2);
    const lines = worker.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`127.0.0.1:${takenPort}`);
    expect(lines[0]).toContain('in use');
    expect(lines[0]).toContain('TOOLQ_METRICS_PORT');
    expect(lines[0]).not.toMatch(/\bat /);
  });
});

describe('coordinator port', () => {
  it('says in one line which setting to change when the port is taken', async () => {
    const coordinator = spawnCoordinatorProcess(
      { REDIS_URL: redis.url, TOOLQ_PORT: String(takenPort) },
      { port: null },
    );
    expect(await coordinator.exited).toBe(2);
    const lines = coordinator.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^toolq-coordinator: .*127\\.0\\.0\\.1:${takenPort}.*in use.*TOOLQ_PORT`),
    );
  });
});
