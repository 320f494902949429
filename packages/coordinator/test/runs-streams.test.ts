/**
 * Many SSE streams of runs on one real coordinator process: they share one Redis reader (the
 * connection count barely moves however many are open), every stream gets every live event in
 * order, resuming stays exact, an app past TOOLQ_MAX_STREAMS_PER_APP is answered 429, and opening
 * a stream does not read the run's input out of Redis.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ScriptedModel, startScriptedModel } from '@toolq/scripted-model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { adminCommand, infoFields } from '../../../test-support/redis-processes.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { letTimePass, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api, RUN_TOOL_NAMES, readSse, runsScript, type SseEvent, waitForRun } from './runs-support.ts';

const ALPHA = 'alpha-token-0123456789abcdef';
const BETA = 'beta-token-0123456789abcdef0';
const MAX_STREAMS = 50;
const RUN_TOOLS = fileURLToPath(new URL('../../../test-support/run-tools.ts', import.meta.url));

let redis: RedisServer;
let model: ScriptedModel;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-streams-'));
  redis = await startRedisServer();
  model = await startScriptedModel(runsScript());
  worker = await startWorkerProcess({
    redisUrl: redis.url,
    tools: RUN_TOOLS,
    concurrency: 4,
    env: { TOOLQ_TEST_EXECUTIONS: join(dir, 'executions.log') },
  });
  coordinator = await startCoordinatorProcess({
    REDIS_URL: redis.url,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
    TOOLQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA}`,
    TOOLQ_MAX_STREAMS_PER_APP: String(MAX_STREAMS),
    // The big-input test sends a 1.8 MB run, past the 1 MiB default bound on run inputs.
    TOOLQ_MAX_RUN_INPUT_BYTES: String(4 * 1024 * 1024),
  });
});

afterAll(async () => {
  coordinator?.child.kill('SIGKILL');
  await coordinator?.exited;
  await worker?.stop();
  await model?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const info = async (section: string) =>
  infoFields(await adminCommand(redis.port, redis.access, ['INFO', section]));
const connectedClients = async () => Number((await info('clients')).get('connected_clients'));
const netOutputBytes = async () => Number((await info('stats')).get('total_net_output_bytes'));

async function startRun(prompt: string): Promise<string> {
  const res = await api(coordinator.url, '/v1/runs', {
    method: 'POST',
    token: ALPHA,
    body: { prompt, tools: RUN_TOOL_NAMES },
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { run_id: string }).run_id;
}

/** Streams of a run, open, each noting when it has seen an event of `type` (then it is following live). */
function openStreams(runId: string, n: number, type: string, headers: Record<string, string> = {}) {
  const seen = new Set<number>();
  const streams = Array.from({ length: n }, (_, i) =>
    readSse(coordinator.url, `/v1/runs/${runId}/events`, {
      token: ALPHA,
      headers,
      stop: (e) => {
        if (e.event === type) seen.add(i);
        return false;
      },
    }),
  );
  return { streams, following: () => seen.size === n || undefined };
}

const stripped = (events: SseEvent[]) => events.map((e) => ({ id: e.id, event: e.event, data: e.data }));

describe('SSE streams of runs', () => {
  it('share one Redis reader: 50 streams of a running run add a connection or two, and each gets every live event in order', async () => {
    const runId = await startRun('slow:fanout:6000');
    // The run is in its slow call once its log says so: everything after is live for the streams.
    await waitFor('the slow call to start', async () => {
      const { events } = await readSse(coordinator.url, `/v1/runs/${runId}/events`, {
        token: ALPHA,
        stop: (e) => e.event === 'tool_started',
      });
      return events.some((e) => e.event === 'tool_started') || undefined;
    });
    const before = await connectedClients();

    const { streams, following } = openStreams(runId, MAX_STREAMS, 'tool_started');
    await waitFor('every stream to follow the run', following);
    const during = await connectedClients();
    console.log(`streams: ${MAX_STREAMS} open, Redis clients ${before} -> ${during}`);
    // Before: one blocked connection per stream (+50).
    expect(during - before).toBeLessThanOrEqual(2);

    const over = await api(coordinator.url, `/v1/runs/${runId}/events`, { token: ALPHA });
    expect(over.status).toBe(429);
    expect(await over.json()).toEqual({
      error: { code: 'TOO_MANY_STREAMS', message: expect.stringMatching(/TOOLQ_MAX_STREAMS_PER_APP=50/) },
    });
    // The cap is per app: another app still streams (and its run is not this one: 404).
    expect((await api(coordinator.url, `/v1/runs/${runId}/events`, { token: BETA })).status).toBe(404);

    // Resuming while live: exactly the events after the one named, the live ones included.
    const results = await Promise.all(streams);
    expect((await waitForRun(coordinator.url, runId, ALPHA)).status).toBe('done');
    const all = await readSse(coordinator.url, `/v1/runs/${runId}/events`, { token: ALPHA });
    const types = all.events.map((e) => e.event);
    expect(types.slice(types.indexOf('tool_started'))).toEqual(
      expect.arrayContaining(['tool_started', 'tool_finished', 'turn_started', 'done']),
    );
    expect(types.at(-1)).toBe('done');
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(stripped(r.events)).toEqual(stripped(all.events));
    }
    // Closed streams no longer count.
    await waitFor('the streams to be released', async () => {
      const res = await api(coordinator.url, `/v1/runs/${runId}/events`, { token: ALPHA });
      await res.body?.cancel();
      return res.status === 200 || undefined;
    });
  });

  it('resume exactly after Last-Event-ID while the run is live, whichever event it names', async () => {
    const runId = await startRun('slow:resume-live:3000');
    // First to follow the run: a Last-Event-ID past the end of the log. It must not move the
    // reader past the events still to come, for the streams after it.
    const future = new AbortController();
    const futureStream = await fetch(`${coordinator.url}/v1/runs/${runId}/events`, {
      headers: { authorization: `Bearer ${ALPHA}`, 'last-event-id': `${Date.now() + 3_600_000}-0` },
      signal: future.signal,
    });
    expect(futureStream.status).toBe(200);
    // A negative on purpose: the reader gets a moment to (wrongly) move past the events to come
    // before the next stream opens. A slow machine can only leave it less chance, never fail it.
    await letTimePass(300);
    const first = openStreams(runId, 1, 'tool_started');
    await waitFor('the stream to follow the run', first.following);
    const early = await readSse(coordinator.url, `/v1/runs/${runId}/events`, {
      token: ALPHA,
      stop: (e) => e.event === 'tool_started',
    });
    // From each event seen so far, a stream opened now (mid-run) gets exactly the rest.
    const resumed = early.events.map((e) =>
      readSse(coordinator.url, `/v1/runs/${runId}/events`, {
        token: ALPHA,
        headers: { 'last-event-id': e.id },
      }),
    );
    const [whole] = await Promise.all(first.streams);
    const all = stripped(whole?.events ?? []);
    expect(all.at(-1)?.event).toBe('done');
    for (const [i, r] of (await Promise.all(resumed)).entries()) {
      expect(stripped(r.events)).toEqual(all.slice(i + 1));
    }
    const reference = await readSse(coordinator.url, `/v1/runs/${runId}/events`, { token: ALPHA });
    expect(stripped(reference.events)).toEqual(all);
    future.abort();
  });

  it('do not read the run record: 10 streams of a run with a 1.8 MB input move kilobytes out of Redis, not 18 MB', async () => {
    const input = 1_800_000;
    const res = await api(coordinator.url, '/v1/runs', {
      method: 'POST',
      token: ALPHA,
      body: {
        prompt: `slow:big-input:4000:${'x'.repeat(input / 2)}`,
        system: 'y'.repeat(input / 2),
        tools: RUN_TOOL_NAMES,
      },
    });
    expect(res.status).toBe(202);
    const runId = ((await res.json()) as { run_id: string }).run_id;
    const started = (e: SseEvent) => e.event === 'tool_started';
    await waitFor('the slow call to start', async () => {
      const { events } = await readSse(coordinator.url, `/v1/runs/${runId}/events`, {
        token: ALPHA,
        stop: started,
      });
      return events.some(started) || undefined;
    });
    const before = await netOutputBytes();
    const opened = await Promise.all(
      Array.from({ length: 10 }, () =>
        readSse(coordinator.url, `/v1/runs/${runId}/events`, { token: ALPHA, stop: started }),
      ),
    );
    const moved = (await netOutputBytes()) - before;
    console.log(`streams: 10 opened on a ${input}-byte input, ${moved} bytes out of Redis`);
    for (const r of opened) expect(r.events.some(started)).toBe(true);
    // Before: each stream read the whole record (its input, and its checkpoint with the input again).
    expect(moved).toBeLessThan(200_000);
    await waitForRun(coordinator.url, runId, ALPHA);
  });
});
