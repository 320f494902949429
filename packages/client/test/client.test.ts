/**
 * @toolq/client against the real thing: a coordinator process (the CLI), a worker process and a
 * redis-server of its own, with tool_use blocks from a real SDK response (the scripted Messages
 * API server through @anthropic-ai/sdk).
 */
import type { ChildProcess } from 'node:child_process';
import Anthropic from '@anthropic-ai/sdk';
import {
  type RetryEvent,
  ToolqClient,
  ToolqConnectionError,
  ToolqHttpError,
  ToolqTimeoutError,
  type ToolUseLike,
} from '@toolq/client';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  spawnCoordinatorProcess,
  startCoordinatorProcess,
} from '../../../test-support/coordinator-process.ts';
import { freePort } from '../../../test-support/free-port.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const TOKEN = 'client-test-token-0123456789';
let redis: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let guarded: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let client: ToolqClient;

/**
 * SIGTERM, then SIGKILL after 15 s: a coordinator that was sent requests its clients aborted can
 * hold its shutdown for its keep-alive timeout (reported to the lead); these tests are about the
 * client, not the coordinator's shutdown, and must not leave processes behind.
 */
async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** The pool's active jobs, as a coordinator's /metrics reports them (the queue gauges). */
async function activeJobs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = /^toolq_queue_jobs\{(?=[^}]*pool="default")(?=[^}]*state="active")[^}]*\} (\d+)/m.exec(text);
  return Number(line?.[1] ?? 0);
}

/** Waiting for one more call than now to run on a worker: the coordinator has the batch. */
async function oneMoreRunning(url: string): Promise<() => Promise<void>> {
  const before = await activeJobs(url);
  return async () => {
    await waitFor('the call to run on the worker', async () => (await activeJobs(url)) > before, {
      intervalMs: 20,
    });
  };
}

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startWorkerProcess({ redisUrl: redis.url });
  [coordinator, guarded] = await Promise.all([
    startCoordinatorProcess({ REDIS_URL: redis.url }),
    startCoordinatorProcess({ REDIS_URL: redis.url, TOOLQ_API_TOKEN: TOKEN }),
  ]);
  client = new ToolqClient({ baseUrl: coordinator.url });
});

afterAll(async () => {
  await Promise.allSettled([coordinator, guarded].filter(Boolean).map((c) => stop(c.child, c.exited)));
  await worker?.stop().catch(() => undefined);
  await redis?.stop();
});

/** The tool_use blocks of a real SDK response, exactly as the SDK hands them over. */
async function sdkToolUses(
  calls: { name: string; input: Record<string, unknown> }[],
): Promise<Anthropic.Messages.ToolUseBlock[]> {
  const model = await startScriptedModel(toolTurnsScript([{ text: 'Running tools.', calls }]));
  try {
    const anthropic = new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 });
    const response = await anthropic.messages.create({
      model: 'claude-sonnet-4-6',
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Go.' }],
      tools: calls.map((c) => ({ name: c.name, input_schema: { type: 'object' as const } })),
    });
    return response.content.filter((b): b is Anthropic.Messages.ToolUseBlock => b.type === 'tool_use');
  } finally {
    await model.close();
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

describe('the happy path', () => {
  it('runs SDK tool_use blocks as they are and answers tool_results in order', async () => {
    const blocks = await sdkToolUses([
      { name: 'diag_echo', input: { value: 'first' } },
      { name: 'diag_sleep', input: { ms: 50 } },
      { name: 'diag_fail', input: { message: 'nope' } },
    ]);
    expectTypeOf(blocks).toMatchTypeOf<readonly ToolUseLike[]>();
    expect(blocks.map((b) => b.type)).toEqual(['tool_use', 'tool_use', 'tool_use']);

    const batch = await client.createToolBatch(blocks, { batchTimeoutMs: 10_000 });
    expect(batch.tool_results).toEqual([
      { type: 'tool_result', tool_use_id: blocks[0]?.id, content: 'first' },
      { type: 'tool_result', tool_use_id: blocks[1]?.id, content: '{"slept_ms":50}' },
      { type: 'tool_result', tool_use_id: blocks[2]?.id, content: 'Error: nope', is_error: true },
    ]);
    expect(batch.stats.calls.map((c) => c.outcome)).toEqual(['ok', 'ok', 'error']);
    // What the Messages API takes next, as it is.
    // What the Messages API takes next, without a cast.
    const next: Anthropic.Messages.MessageParam = { role: 'user', content: batch.tool_results };
    expect(next.content).toHaveLength(3);
  });

  it('collects a batch by its id, lists tools, reads the report', async () => {
    const sent = await client.createToolBatch([{ id: 'toolu_c1', name: 'diag_echo', input: { value: 7 } }], {
      batchId: 'client-collect-1',
    });
    const collected = await client.getToolBatch('client-collect-1');
    expect(collected.batch_id).toBe('client-collect-1');
    expect(collected.tool_results).toEqual(sent.tool_results);

    const tools = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['diag_echo', 'diag_sleep']));
    expect(tools.find((t) => t.name === 'diag_echo')?.live_workers).toBeGreaterThan(0);

    const report = await client.getReport();
    expect(report.calls).toBeGreaterThan(0);
  });

  it('creates a run and reads it (runs need a model: this coordinator has none, so 503 NO_MODEL, not retried)', async () => {
    const retries: RetryEvent[] = [];
    const noModel = new ToolqClient({ baseUrl: coordinator.url, onRetry: (e) => retries.push(e) });
    const err = await rejection(noModel.createRun({ prompt: 'hi', tools: [] }));
    expect(err).toBeInstanceOf(ToolqHttpError);
    expect(err).toMatchObject({ status: 503, code: 'NO_MODEL', attempts: 1 });
    expect(retries).toEqual([]);
    const missing = await rejection(client.getRun('run_000000000000000000000000'));
    expect(missing).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });
});

describe('typed errors, never retried', () => {
  it('400 names what is wrong, and the index of a block that is not a tool_use', async () => {
    const retries: RetryEvent[] = [];
    const c = new ToolqClient({ baseUrl: coordinator.url, onRetry: (e) => retries.push(e) });
    const err = await rejection(
      c.createToolBatch([
        { type: 'tool_use', id: 'toolu_1', name: 'diag_echo', input: {} },
        { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: {} },
      ]),
    );
    expect(err).toBeInstanceOf(ToolqHttpError);
    const http = err as ToolqHttpError;
    expect(http.status).toBe(400);
    expect(http.code).toBe('INVALID_REQUEST');
    expect(http.serverMessage).toMatch(/tool_uses\.1\.type/);
    expect(http.serverMessage).toMatch(/server_tool_use/);
    expect(http.attempts).toBe(1);
    expect(retries).toEqual([]);
  });

  it('401 without or with a wrong token; the right one works', async () => {
    for (const token of [undefined, 'wrong-token-wrong-token']) {
      const c = new ToolqClient({ baseUrl: guarded.url, ...(token ? { token } : {}) });
      const err = await rejection(c.listTools());
      expect(err).toBeInstanceOf(ToolqHttpError);
      expect(err).toMatchObject({ status: 401, code: 'UNAUTHORIZED', attempts: 1 });
    }
    const ok = new ToolqClient({ baseUrl: guarded.url, token: TOKEN });
    expect((await ok.listTools()).length).toBeGreaterThan(0);
  });

  it('404 for a batch never sent; 409 for a batch id used twice', async () => {
    const missing = await rejection(client.getToolBatch('never-sent-here'));
    expect(missing).toBeInstanceOf(ToolqHttpError);
    expect(missing).toMatchObject({ status: 404, code: 'NOT_FOUND', method: 'GET' });

    const uses = [{ id: 'toolu_1', name: 'diag_echo', input: { value: 1 } }];
    await client.createToolBatch(uses, { batchId: 'client-twice' });
    const again = await rejection(client.createToolBatch(uses, { batchId: 'client-twice' }));
    expect(again).toBeInstanceOf(ToolqHttpError);
    expect(again).toMatchObject({ status: 409, code: 'BATCH_EXISTS', attempts: 1 });
  });
});

describe('retries', () => {
  it('retries a 503 (Redis down: the coordinator is not ready) until it is ready again', async () => {
    const retries: RetryEvent[] = [];
    let restarted: Promise<void> | undefined;
    const c = new ToolqClient({
      baseUrl: coordinator.url,
      retry: { attempts: 20, initialDelayMs: 100, maxDelayMs: 500 },
      timeoutMs: 60_000,
      onRetry: (e) => {
        retries.push(e);
        // Redis comes back once the client has been told 503.
        restarted ??= redis.start();
      },
    });
    await redis.kill();
    try {
      const tools = await c.listTools();
      expect(Array.isArray(tools)).toBe(true);
    } finally {
      await (restarted ?? redis.start());
    }
    expect(retries[0]).toMatchObject({
      method: 'GET',
      path: '/v1/tools',
      attempt: 1,
      reason: '503 REDIS_UNAVAILABLE',
    });
    // The worker re-registers on its next heartbeat; later tests need it.
    await expect
      .poll(
        async () => (await client.listTools()).some((t) => t.name === 'diag_echo' && t.live_workers > 0),
        {
          timeout: 30_000,
          interval: 250,
        },
      )
      .toBe(true);
  });

  it('retries a refused connection, even for a POST (it never reached a server), until the coordinator is up', async () => {
    const port = await freePort();
    const retries: RetryEvent[] = [];
    const c = new ToolqClient({
      baseUrl: `http://127.0.0.1:${port}`,
      retry: { attempts: 100, initialDelayMs: 100, maxDelayMs: 300 },
      onRetry: (e) => retries.push(e),
    });
    let late: Awaited<ReturnType<typeof startCoordinatorProcess>> | undefined;
    try {
      const pending = c.createToolBatch([{ id: 'toolu_1', name: 'diag_echo', input: { value: 'late' } }]);
      // The first attempt is refused before the coordinator starts.
      await expect.poll(() => retries.length, { timeout: 10_000 }).toBeGreaterThan(0);
      late = await startCoordinatorProcess({ REDIS_URL: redis.url }, { port });
      const batch = await pending;
      expect(batch.tool_results).toEqual([{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'late' }]);
      expect(retries[0]).toMatchObject({ method: 'POST', reason: 'ECONNREFUSED' });
      // A coordinator that listens but has not started yet refuses it as STARTING: sent again too.
      for (const r of retries) expect(['ECONNREFUSED', '503 STARTING']).toContain(r.reason);
    } finally {
      if (late) await stop(late.child, late.exited);
    }
  });

  it('sends a POST again while the coordinator listens but has not started (503 STARTING: nothing ran)', async () => {
    // A Redis that is down: the coordinator listens (for its probes) and cannot start until it is up.
    const late = await startRedisServer();
    await late.kill();
    const starting = spawnCoordinatorProcess({ REDIS_URL: late.url });
    let redisUp: Promise<void> | undefined;
    try {
      const url = await waitFor(
        'the coordinator to listen',
        () => /"event":"listening","url":"([^"]+)"/.exec(starting.output())?.[1],
        100_000,
      );
      const retries: RetryEvent[] = [];
      const c = new ToolqClient({
        baseUrl: url,
        retry: { attempts: 200, initialDelayMs: 100, maxDelayMs: 300 },
        onRetry: (e) => {
          retries.push(e);
          // Redis comes up once the POST has been refused as STARTING.
          if (e.reason === '503 STARTING') redisUp ??= late.start();
        },
      });
      const batch = await c.createToolBatch([{ id: 'toolu_1', name: 'diag_echo', input: { value: 'x' } }]);
      // Answered by the started coordinator (no worker serves this Redis: the tool is unknown there).
      expect(batch.tool_results).toMatchObject([{ tool_use_id: 'toolu_1', is_error: true }]);
      expect(retries[0]).toMatchObject({ method: 'POST', reason: '503 STARTING' });
    } finally {
      await stop(starting.child, starting.exited);
      await redisUp;
      await late.stop();
    }
  });

  it('a batch with its own id survives its coordinator dying mid-batch: the repeat gets 409 and collects it', async () => {
    const port = await freePort();
    const env = { REDIS_URL: redis.url, TOOLQ_COORDINATOR_ID: 'client-test-restart' };
    let first: Awaited<ReturnType<typeof startCoordinatorProcess>> | undefined =
      await startCoordinatorProcess(env, {
        port,
      });
    let second: Awaited<ReturnType<typeof startCoordinatorProcess>> | undefined;
    const retries: RetryEvent[] = [];
    const c = new ToolqClient({
      baseUrl: first.url,
      retry: { attempts: 200, initialDelayMs: 100, maxDelayMs: 300 },
      onRetry: (e) => retries.push(e),
    });
    try {
      const running = await oneMoreRunning(first.url);
      const postedAt = Date.now();
      const pending = c.createToolBatch([{ id: 'toolu_1', name: 'diag_sleep', input: { ms: 2_000 } }], {
        batchId: 'client-survives-restart',
        batchTimeoutMs: 30_000,
      });
      await running();
      first.child.kill('SIGKILL'); // mid-batch: the request was received, no answer will come
      await first.exited;
      first = undefined;
      second = await startCoordinatorProcess(env, { port });
      const restartedMs = Date.now() - postedAt;
      const batch = await pending;
      const elapsed = Date.now() - postedAt;
      expect(batch.batch_id).toBe('client-survives-restart');
      // Collected, not run again: the batch's wall time counts from the first POST. A second run
      // could only have started once the new coordinator was up, after restartedMs.
      expect(elapsed - batch.stats.wall_ms).toBeLessThan(restartedMs);
      expect(batch.tool_results).toEqual([
        { type: 'tool_result', tool_use_id: 'toolu_1', content: '{"slept_ms":2000}' },
      ]);
      // The broken connection first (the POST may have been received), then refusals while it restarted.
      expect(retries[0]?.reason).not.toBe('ECONNREFUSED');
      expect(retries.map((r) => r.method)).not.toContain('GET');
    } finally {
      if (first) await stop(first.child, first.exited);
      if (second) await stop(second.child, second.exited);
    }
  });

  it('gives up with a ToolqConnectionError when nothing ever listens', async () => {
    const port = await freePort();
    const c = new ToolqClient({
      baseUrl: `http://127.0.0.1:${port}`,
      retry: { attempts: 3, initialDelayMs: 10 },
    });
    const err = await rejection(c.listTools());
    expect(err).toBeInstanceOf(ToolqConnectionError);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', attempts: 3, maybeReceived: false });
  });
});

describe('abort and timeout', () => {
  it('an abort rejects at once with the reason, and the coordinator cancels the calls', async () => {
    const controller = new AbortController();
    const running = await oneMoreRunning(coordinator.url);
    const pending = client.createToolBatch([{ id: 'toolu_1', name: 'diag_sleep', input: { ms: 30_000 } }], {
      batchId: 'client-aborted',
      signal: controller.signal,
    });
    // Aborted mid-call: once the call runs on the worker.
    await running();
    const abortedAt = Date.now();
    controller.abort(new Error('the user closed the tab'));
    const err = await rejection(pending);
    expect((err as Error).message).toBe('the user closed the tab');
    // At once: long before the 30 s call could have answered.
    expect(Date.now() - abortedAt).toBeLessThan(10_000);
    // The server saw the client go and answered the call as cancelled.
    const collected = await client.getToolBatch('client-aborted', { timeoutMs: 20_000 });
    expect(collected.stats.calls[0]?.outcome).toBe('cancelled');
    expect(collected.tool_results[0]?.is_error).toBe(true);
  });

  it('an already aborted signal sends nothing; one signal shared by many calls adds no listener per call', async () => {
    const done = new AbortController();
    done.abort(new Error('too late'));
    await expect(client.listTools({ signal: done.signal })).rejects.toThrow('too late');

    const shared = new AbortController();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      await Promise.all(Array.from({ length: 30 }, () => client.listTools({ signal: shared.signal })));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('timeoutMs bounds the call with a ToolqTimeoutError', async () => {
    const started = Date.now();
    const err = await rejection(
      client.createToolBatch([{ id: 'toolu_1', name: 'diag_sleep', input: { ms: 30_000 } }], {
        timeoutMs: 300,
      }),
    );
    expect(err).toBeInstanceOf(ToolqTimeoutError);
    expect(err).toMatchObject({ timeoutMs: 300, attempts: 1 });
    // Bounded by the timeout: long before the 30 s call could have answered.
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
