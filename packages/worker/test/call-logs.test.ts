/**
 * What operators read in the logs: a worker's warn line for each call that failed or timed out
 * (names and the outcome's first line, never the input), and a coordinator's info line for a run
 * that finished. Real processes on a real Redis; their stdout is what is checked.
 */
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { spawnWorkerProcess } from '../../../test-support/worker-process.ts';

const SECRET = 'secret-input-4f1c9e';

let redis: RedisServer;
let model: ScriptedModel;
let coordinator: ReturnType<typeof spawnCoordinatorProcess>;
let worker: ReturnType<typeof spawnWorkerProcess>;
let url: string;

beforeAll(async () => {
  redis = await startRedisServer();
  model = await startScriptedModel(toolTurnsScript([]));
  coordinator = spawnCoordinatorProcess({
    REDIS_URL: redis.url,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
    TOOLQ_LOG_LEVEL: 'info',
  });
  worker = spawnWorkerProcess({ redisUrl: redis.url, env: { TOOLQ_LOG_LEVEL: 'info' } });
  await waitFor(
    'the coordinator and the worker to be ready',
    () => [coordinator, worker].every((p) => p.output().includes('"event":"ready"')) || undefined,
  );
  url = /"event":"listening","url":"([^"]+)"/.exec(coordinator.output())?.[1] ?? '';
});

afterAll(async () => {
  for (const p of [coordinator, worker]) p?.child.kill('SIGKILL');
  await Promise.all([coordinator?.exited, worker?.exited]);
  await model?.close();
  await redis?.stop();
});

/** The JSON log lines a process wrote with this message. */
function logLines(output: string, msg: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === msg);
}

it('a worker logs each failed or timed-out call at warn, without its input', async () => {
  const res = await fetch(`${url}/v1/tool-batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      timeout_ms: 800,
      tool_uses: [
        { id: 'tu_fail', name: 'diag_fail', input: { message: 'disk full' } },
        { id: 'tu_slow', name: 'diag_sleep', input: { ms: 20_000 } },
        { id: 'tu_bad', name: 'diag_sleep', input: { ms: SECRET } },
        { id: 'tu_ok', name: 'diag_echo', input: { value: SECRET } },
      ],
    }),
  });
  expect(res.status).toBe(200);
  const failed = await waitFor('three warn lines', () => {
    const lines = logLines(worker.output(), 'tool call failed');
    return lines.length >= 3 ? lines : undefined;
  });
  const byId = new Map(failed.map((l) => [l.tool_use_id, l]));
  expect([...byId.keys()].sort()).toEqual(['tu_bad', 'tu_fail', 'tu_slow']);
  expect(byId.get('tu_fail')).toMatchObject({
    level: 40,
    tool: 'diag_fail',
    outcome: 'error',
    message: expect.stringContaining('disk full'),
  });
  expect(byId.get('tu_slow')).toMatchObject({ level: 40, tool: 'diag_sleep', outcome: 'timeout' });
  expect(byId.get('tu_slow')?.message).toMatch(/timed out/i);
  expect(byId.get('tu_bad')).toMatchObject({ level: 40, tool: 'diag_sleep', outcome: 'invalid_input' });
  expect(worker.output()).not.toContain(SECRET);
});

it('a coordinator logs a finished run at info', async () => {
  const res = await fetch(`${url}/v1/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'hello', tools: [] }),
  });
  expect(res.status).toBe(202);
  const { run_id } = (await res.json()) as { run_id: string };
  const line = await waitFor('the run finished line', () =>
    logLines(coordinator.output(), 'run finished').find((l) => l.run === run_id),
  );
  expect(line).toMatchObject({ level: 30, run: run_id, status: 'end_turn' });
});
