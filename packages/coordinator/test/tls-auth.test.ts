/**
 * TLS with a private CA and passwords, with real processes: a TLS-only redis-server with
 * requirepass, and Sentinel with one password for the data nodes and another for the sentinels
 * (and once more over TLS), the worker and coordinator CLIs configured only by the environment.
 * The CA is a throwaway one made with openssl at test time; a second one stands for "a CA the
 * client does not trust".
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RedisConnectionConfig } from '@toolq/shared';
import { createRedis, probeRedis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  spawnCoordinatorProcess,
  startCoordinatorProcess,
} from '../../../test-support/coordinator-process.ts';
import { expectMixedBatchAnswered } from '../../../test-support/mixed-batch.ts';
import {
  type RedisSentinelSetup,
  SENTINEL_MASTER,
  startRedisSentinel,
} from '../../../test-support/redis-sentinel.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { makeTestTls, type TestTls } from '../../../test-support/tls.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import {
  spawnWorkerProcess,
  startWorkerProcess,
  type WorkerProcess,
} from '../../../test-support/worker-process.ts';

const TEST_TOOLS = fileURLToPath(new URL('../../../test-support/test-tools.ts', import.meta.url));
const PASSWORD = 'tls-test-data-pw-7f3a';
const SENTINEL_PASSWORD = 'tls-test-sentinel-pw-91bc';

let tls: TestTls;
/** A CA that signed nothing the servers show. */
let otherTls: TestTls;

beforeAll(async () => {
  [tls, otherTls] = await Promise.all([makeTestTls(), makeTestTls()]);
});
afterAll(() => {
  tls?.remove();
  otherTls?.remove();
});

/** Everything a child process wrote to stdout from now on. */
function collectOutput(child: ChildProcess): () => string {
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks).toString('utf8');
}

/** The two pools expectMixedBatchAnswered needs, each worker configured by `env` alone. */
function startWorkers(env: Record<string, string>, options: { metrics?: boolean } = {}) {
  // redisUrl is what test-support sets REDIS_URL to; `env` (applied after it) says the rest.
  const redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:1';
  return Promise.all([
    startWorkerProcess({ redisUrl, pool: 'alpha', tools: 'diagnostics', env, ...options }),
    startWorkerProcess({ redisUrl, pool: 'beta', tools: TEST_TOOLS, env }),
  ]);
}

/**
 * A coordinator CLI that cannot connect: it must keep running and retrying (no crash), and say
 * why in its log, without ever writing a password there.
 */
async function expectRetryingWithReason(env: Record<string, string>, reason: RegExp): Promise<void> {
  const coordinator = spawnCoordinatorProcess(env);
  try {
    // A process's start-up first (as long as a ready line may take: 20 s failed at load 36).
    await waitFor(`the coordinator to log ${reason}`, async () => reason.test(coordinator.output()), 100_000);
    expect(coordinator.child.exitCode).toBeNull();
    expect(coordinator.output()).not.toMatch(/"event":"ready"/);
    // It listens meanwhile: alive, not ready, and saying why; the API answers 503 until it starts.
    const url = /"event":"listening","url":"([^"]+)"/.exec(coordinator.output())?.[1];
    expect(url).toBeDefined();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    const { reason: why } = (await ready.json()) as { reason: string };
    expect(why).toMatch(
      /^the coordinator is still starting: Redis refuses writes: Redis did not answer within 2000 ms/,
    );
    expect(why).toMatch(reason);
    const batch = await fetch(`${url}/v1/tool-batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tool_uses: [{ id: 'a', name: 'diag_echo', input: {} }] }),
    });
    // Refused before anything ran (a client may repeat even this POST), and when to ask again.
    expect(batch.status).toBe(503);
    expect(batch.headers.get('retry-after')).toBe('1');
    expect(await batch.json()).toMatchObject({ error: { code: 'STARTING' } });
    for (const secret of [PASSWORD, SENTINEL_PASSWORD, tls.ca, otherTls.ca]) {
      expect(coordinator.output()).not.toContain(secret);
    }
  } finally {
    await stopChild(coordinator.child, 'SIGKILL');
  }
}

describe('TLS with a private CA: a TLS-only redis-server with requirepass', () => {
  let server: RedisServer;
  let workers: WorkerProcess[] = [];
  let workerOutput: () => string;

  beforeAll(async () => {
    server = await startRedisServer({ tls, password: PASSWORD });
    workers = await startWorkers(server.env, { metrics: true });
    workerOutput = collectOutput(workers[0]?.child as ChildProcess);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await server?.stop();
  });

  it('the CLIs, configured by REDIS_URL=rediss:// + REDIS_TLS_CA_FILE + REDIS_PASSWORD, answer a mixed batch', async () => {
    expect(server.env).toEqual({
      REDIS_URL: `rediss://127.0.0.1:${server.port}`,
      REDIS_PASSWORD: PASSWORD,
      REDIS_TLS_CA_FILE: tls.caFile,
    });
    const coordinator = await startCoordinatorProcess(server.env);
    try {
      await expectMixedBatchAnswered(coordinator.url);
    } finally {
      await stopChild(coordinator.child);
    }
  });

  it('a coordinator that does not trust the server’s CA keeps retrying, says why, never logs the password', async () => {
    const { REDIS_TLS_CA_FILE: _trusted, ...withoutCa } = server.env;
    await expectRetryingWithReason(withoutCa, /self-signed certificate in certificate chain/);
    await expectRetryingWithReason(
      { ...server.env, REDIS_TLS_CA_FILE: otherTls.caFile },
      /self-signed certificate in certificate chain/,
    );
  });

  it('a worker that does not trust the server’s CA keeps retrying: /healthz answers, /readyz 503 says why', async () => {
    const worker = spawnWorkerProcess({
      redisUrl: server.env.REDIS_URL ?? '',
      metrics: true,
      env: { ...server.env, REDIS_TLS_CA_FILE: otherTls.caFile },
    });
    try {
      const listening = () => /"event":"listening","metrics":"([^"]+)"/.exec(worker.output())?.[1];
      // Its start-up (as long as a ready line may take: 20 s failed at load 36).
      await waitFor('the worker to listen', async () => listening() !== undefined, 100_000);
      const url = listening();
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { reason: string }).reason).toMatch(
        /^the worker is still starting: Redis refuses writes: Redis did not answer within 2000 ms \(connection error: self-signed certificate in certificate chain\)/,
      );
      expect(worker.child.exitCode).toBeNull();
      expect(worker.output()).not.toMatch(/"event":"ready"/);
      for (const secret of [PASSWORD, tls.ca, otherTls.ca]) expect(worker.output()).not.toContain(secret);
    } finally {
      await stopChild(worker.child, 'SIGKILL');
    }
  });

  it('a worker whose Redis comes back with another CA’s certificate: /readyz 503 with the reason, ready again with the right one', async () => {
    const readyz = `${workers[0]?.metricsUrl}/readyz`;
    expect((await fetch(readyz)).status).toBe(200);
    await server.kill();
    server.useTls(otherTls);
    await server.start();
    let reason = '';
    await waitFor(
      '/readyz to name the certificate',
      async () => {
        const res = await fetch(readyz);
        reason = ((await res.json()) as { reason?: string }).reason ?? '';
        return res.status === 503 && /certificate/.test(reason);
      },
      60_000,
    );
    expect(reason).toMatch(
      /^Redis refuses writes: Redis did not answer within 2000 ms \(connection error: self-signed certificate in certificate chain\)$/,
    );
    expect(workers[0]?.child.exitCode).toBeNull();
    await server.kill();
    server.useTls(tls);
    await server.start();
    await waitFor('/readyz to say ready again', async () => (await fetch(readyz)).ok, 60_000);
    expect(workerOutput()).not.toContain(PASSWORD);
  });
});

describe('Sentinel with passwords: data nodes requirepass A, sentinels requirepass B', () => {
  let sentinel: RedisSentinelSetup;
  let workers: WorkerProcess[] = [];

  beforeAll(async () => {
    sentinel = await startRedisSentinel({ password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD });
    workers = await startWorkers(sentinel.env);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await sentinel?.stop();
  });

  it('the CLIs (REDIS_PASSWORD=A, REDIS_SENTINEL_PASSWORD=B) answer a mixed batch, and again after a SENTINEL FAILOVER', async () => {
    expect(sentinel.env).toMatchObject({
      REDIS_PASSWORD: PASSWORD,
      REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD,
    });
    const coordinator = await startCoordinatorProcess(sentinel.env);
    try {
      await expectMixedBatchAnswered(coordinator.url);
      const before = await sentinel.masterPort();
      const live = sentinel.sentinels[0]?.port ?? 0;
      expect(await sentinel.command(live, ['sentinel', 'failover', SENTINEL_MASTER])).toBe('OK');
      await waitFor('a replica to be promoted', async () => (await sentinel.masterPort()) !== before, 30_000);
      // Calls made during the switch may be answered is_error (sentinel.test.ts covers that);
      // once it settles, calls succeed again with no process restarted.
      await waitFor(
        'a call to succeed on the new master',
        async () => {
          const res = await fetch(`${coordinator.url}/v1/tool-batches`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              timeout_ms: 2_000,
              tool_uses: [{ id: 'x', name: 'diag_echo', input: { value: 'ok' } }],
            }),
          });
          const body = (await res.json()) as { tool_results?: { content: unknown; is_error?: boolean }[] };
          return res.ok && body.tool_results?.[0]?.content === 'ok' && !body.tool_results[0].is_error;
        },
        30_000,
      );
      await expectMixedBatchAnswered(coordinator.url);
    } finally {
      await stopChild(coordinator.child);
    }
  });

  it('a wrong sentinel password: not ready, the sentinels’ WRONGPASS as the reason, no password in the log', async () => {
    const { config } = sentinel;
    if (config.mode !== 'sentinel') throw new Error('not a sentinel config');
    const wrong: RedisConnectionConfig = { ...config, sentinelCredentials: { password: 'not-the-one' } };
    const redis = createRedis(wrong);
    redis.on('error', () => undefined);
    try {
      const probe = await probeRedis(redis, ['toolq:{c.x}:probe']);
      expect(probe).toMatchObject({
        ready: false,
        reason: expect.stringMatching(/All sentinels are unreachable/),
      });
      expect(probe).toMatchObject({ reason: expect.stringMatching(/WRONGPASS/) });
    } finally {
      redis.disconnect();
    }
    await expectRetryingWithReason(
      { ...sentinel.env, REDIS_SENTINEL_PASSWORD: `${SENTINEL_PASSWORD}-wrong` },
      /All sentinels are unreachable.*WRONGPASS/,
    );
  });
});

describe('Sentinel over TLS with passwords: every node and sentinel TLS-only', () => {
  let sentinel: RedisSentinelSetup;
  let workers: WorkerProcess[] = [];

  beforeAll(async () => {
    sentinel = await startRedisSentinel({ password: PASSWORD, sentinelPassword: SENTINEL_PASSWORD, tls });
    workers = await startWorkers(sentinel.env);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    await sentinel?.stop();
  });

  it('the CLIs (REDIS_SENTINELS + passwords + REDIS_TLS_CA_FILE) answer a mixed batch', async () => {
    expect(sentinel.env).toMatchObject({ REDIS_TLS_CA_FILE: tls.caFile });
    const coordinator = await startCoordinatorProcess(sentinel.env);
    try {
      await expectMixedBatchAnswered(coordinator.url);
    } finally {
      await stopChild(coordinator.child);
    }
  });

  it('a client trusting another CA is not ready: no sentinel reachable', async () => {
    const redis = createRedis({ ...sentinel.config, tls: { ca: otherTls.ca } });
    redis.on('error', () => undefined);
    try {
      // ioredis's client for a sentinel neither retries nor reports its own 'error' (the TLS
      // failure): what reaches toolq is "Connection is closed.", after the sentinels' names.
      expect(await probeRedis(redis, ['toolq:{c.x}:probe'])).toMatchObject({
        ready: false,
        reason: expect.stringMatching(/All sentinels are unreachable.*Last error: Connection is closed\./),
      });
    } finally {
      redis.disconnect();
    }
  });
});
