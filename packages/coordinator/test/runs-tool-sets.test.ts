/**
 * A durable run names its tools: `tools` (names) or `tool_set` (a set the operator defined in
 * TOOLQ_TOOL_SETS). A run with neither, with both, or with a set nobody defined is refused with a
 * 400 that names the field and says how to name tools; a run with a set is offered exactly the
 * set's tools (the model sees them in its request), and only those run. A real coordinator and a
 * real worker process serving the diagnostics tools, the real SDK against the scripted model.
 */
import type { ChildProcess } from 'node:child_process';
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { spawnWorkerProcess } from '../../../test-support/worker-process.ts';
import { api, waitForRun } from './runs-support.ts';

const TOKEN = 'tool-sets-token-0123456789ab';

let redis: RedisServer;
let model: ScriptedModel;
let worker: ReturnType<typeof spawnWorkerProcess>;
let coordinator: ReturnType<typeof spawnCoordinatorProcess>;
let url: string;

beforeAll(async () => {
  redis = await startRedisServer();
  // Every run asks for diag_echo and diag_sleep at once, then ends.
  model = await startScriptedModel(
    toolTurnsScript({
      turns: [
        {
          calls: [
            { name: 'diag_echo', input: { value: 'echoed' } },
            { name: 'diag_sleep', input: { ms: 1 } },
          ],
        },
      ],
      final: () => 'done',
    }),
  );
  worker = spawnWorkerProcess({ redisUrl: redis.url });
  coordinator = spawnCoordinatorProcess({
    REDIS_URL: redis.url,
    TOOLQ_API_TOKEN: TOKEN,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
    TOOLQ_TOOL_SETS: 'echoing:diag_echo; both:diag_sleep,diag_echo',
    TOOLQ_LOG_LEVEL: 'info',
  });
  // As long as a ready line may take (test-support/ready-line.ts): the default 30 s is not.
  url = await waitFor(
    'the coordinator',
    () => /"event":"ready","url":"([^"]+)"/.exec(coordinator.output())?.[1],
    100_000,
  );
  await waitFor('the worker', () => worker.output().includes('"event":"ready"'), 100_000);
});

afterAll(async () => {
  await Promise.all(
    [worker?.child, coordinator?.child]
      .filter((c): c is ChildProcess => c !== undefined)
      .map((c) => stopChild(c)),
  );
  await model?.close();
  await redis?.stop();
});

const post = (body: unknown) => api(url, '/v1/runs', { method: 'POST', token: TOKEN, body });

async function refusal(body: unknown): Promise<{ status: number; code: string; message: string }> {
  const res = await post(body);
  const { error } = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...error };
}

describe('POST /v1/runs names its tools', () => {
  it('a run without tools or tool_set is refused (400) naming the field and how to name tools', async () => {
    const before = model.requests.length;
    const refused = await refusal({ prompt: 'Echo something.' });
    expect(refused).toMatchObject({ status: 400, code: 'INVALID_REQUEST' });
    expect(refused.message).toMatch(
      /^invalid body: tools: a run names the tools its model is offered: give `tools`/,
    );
    expect(refused.message).toContain('`tool_set`');
    expect(refused.message).toContain('TOOLQ_TOOL_SETS');

    const both = await refusal({ prompt: 'Echo something.', tools: ['diag_echo'], tool_set: 'echoing' });
    expect(both).toMatchObject({ status: 400, code: 'INVALID_REQUEST' });
    expect(both.message).toMatch(/tool_set: give `tools` or `tool_set`, not both/);

    const unknown = await refusal({ prompt: 'Echo something.', tool_set: 'writers' });
    expect(unknown).toMatchObject({ status: 400, code: 'INVALID_REQUEST' });
    expect(unknown.message).toBe(
      'invalid body: tool_set: no tool set "writers" on this coordinator; the operator defined both, echoing (TOOLQ_TOOL_SETS)',
    );
    // Nothing reached the model, and no run was created.
    expect(model.requests.length).toBe(before);
    const list = (await (await api(url, '/v1/runs', { token: TOKEN })).json()) as { runs: unknown[] };
    expect(list.runs).toEqual([]);
  });

  it("a run with tool_set is offered exactly the set's tools; a call of any other is refused unrun", async () => {
    const before = model.requests.length;
    const res = await post({ prompt: 'Echo something.', tool_set: 'echoing' });
    expect(res.status).toBe(202);
    const { run_id } = (await res.json()) as { run_id: string };
    const run = await waitForRun(url, run_id, TOKEN);
    expect(run.status).toBe('done');
    const first = model.requests[before]?.body as { tools?: { name: string }[] } | undefined;
    expect(first?.tools?.map((t) => t.name)).toEqual(['diag_echo']);
    const calls = (run.result?.calls ?? []) as { name: string; outcome: string; worker?: string }[];
    expect(calls.map((c) => [c.name, c.outcome])).toEqual([
      ['diag_echo', 'ok'],
      ['diag_sleep', 'unknown_tool'],
    ]);
    expect(calls[1]?.worker).toBeUndefined();
  });

  it('a set of two tools offers both, in the order the operator wrote them', async () => {
    const before = model.requests.length;
    const res = await post({ prompt: 'Echo something.', tool_set: 'both' });
    expect(res.status).toBe(202);
    const { run_id } = (await res.json()) as { run_id: string };
    const run = await waitForRun(url, run_id, TOKEN);
    expect(run.status).toBe('done');
    const first = model.requests[before]?.body as { tools?: { name: string }[] } | undefined;
    expect(first?.tools?.map((t) => t.name)).toEqual(['diag_sleep', 'diag_echo']);
    const calls = (run.result?.calls ?? []) as unknown as { outcome: string }[];
    expect(calls.map((c) => c.outcome)).toEqual(['ok', 'ok']);
  });

  it('the coordinator logs its tool sets at start', () => {
    expect(coordinator.output()).toContain(
      '"toolSets":{"echoing":["diag_echo"],"both":["diag_sleep","diag_echo"]}',
    );
  });

  it('a malformed TOOLQ_TOOL_SETS stops the coordinator with a message naming the variable', async () => {
    const bad = spawnCoordinatorProcess({ REDIS_URL: redis.url, TOOLQ_TOOL_SETS: 'support:diag echo' });
    expect(await bad.exited).not.toBe(0);
    expect(bad.output()).toContain(
      'invalid environment: TOOLQ_TOOL_SETS: entry 1 (tool set support): "diag echo" is not a tool name',
    );
  });
});
