/**
 * A durable run whose coordinator dies while an at-most-once call runs (docs/delivery.md): the
 * coordinator that takes the run over never starts the call again. It waits for the running call
 * (its worker alive), or, when that worker died with the coordinator, answers it "outcome
 * unknown" once the death is noticed. Real coordinator and worker processes, the scripted model,
 * a tool that records every start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { createRedis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { readStarts } from '../../../test-support/delivery-tools.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api, getRun, promptOf, readSse, waitForRun } from './runs-support.ts';

const TOKEN = 'delivery-token-0123456789abcd';
const TOOLS = fileURLToPath(new URL('../../../test-support/delivery-tools.ts', import.meta.url));

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;
let redis: RedisServer;
let model: ScriptedModel;
let workers: WorkerProcess[] = [];
let coordinators: Coordinator[] = [];
let dir: string;
let log: string;

const TOOL_OF: Record<string, string> = { pay: 'test_pay', look: 'test_lookup' };

/**
 * `pay:<label>:<ms>` (`look:…`): one turn with one test_pay (test_lookup) call, its tool_use id
 * fixed (a re-ask gets the same call).
 */
function script(ctx: Parameters<ReturnType<typeof toolTurnsScript>>[0]) {
  const [kind = '', label = '', ms = '0'] = promptOf(ctx.body).split(':');
  const name = TOOL_OF[kind];
  const calls = name ? [{ id: `toolu_${label}`, name, input: { label, ms: Number(ms) } }] : [];
  return toolTurnsScript(calls.length > 0 ? [{ calls }] : [])(ctx);
}

const startCoordinator = () =>
  startCoordinatorProcess({
    REDIS_URL: redis.url,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
    TOOLQ_API_TOKEN: TOKEN,
    TOOLQ_RUN_TAKEOVER_MS: '3000',
    TOOLQ_DEAD_WORKER_AFTER_MS: '3000',
  });

const startWorker = () =>
  startWorkerProcess({ redisUrl: redis.url, tools: TOOLS, env: { TOOLQ_TEST_EXECUTIONS: log } });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-runs-delivery-'));
  log = join(dir, 'starts.log');
  redis = await startRedisServer();
  model = await startScriptedModel(script);
  workers = await Promise.all([startWorker(), startWorker()]);
  coordinators = await Promise.all([startCoordinator(), startCoordinator()]);
}, 60_000);

afterAll(async () => {
  for (const c of coordinators) c.child.kill('SIGKILL');
  await Promise.all(coordinators.map((c) => c.exited));
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await model?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function startRun(url: string, prompt: string): Promise<string> {
  const res = await api(url, '/v1/runs', {
    method: 'POST',
    token: TOKEN,
    body: { prompt, tools: ['test_pay', 'test_lookup'] },
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { run_id: string }).run_id;
}

const startsOf = (label: string) => readStarts(log).filter((s) => s.label === label);

/**
 * Kills the run's owner once its call runs (with the call's worker, when asked) and puts fresh
 * processes in their places; resolves with the coordinator that was not killed.
 */
async function killOwnerMidCall(runId: string, label: string, withWorker = false) {
  const [first] = coordinators;
  if (!first) throw new Error('no coordinator');
  await waitFor(`the call ${label} to start`, () => startsOf(label).length > 0);
  const owner = (await getRun(first.url, runId, TOKEN)).coordinator;
  const doomed = coordinators.find((c) => c.id === owner);
  const survivor = coordinators.find((c) => c.id !== owner);
  if (!doomed || !survivor) throw new Error(`owner ${owner} is not one of the coordinators`);
  const worker = workers.find((w) => w.child.pid === startsOf(label)[0]?.pid);
  if (withWorker && !worker) throw new Error(`no worker started ${label}`);
  // The worker notes its running jobs within 100 ms (docs/delivery.md): a death before that is
  // left to BullMQ's stalled-job check (30 s), not the dead-worker sweep this test is about.
  if (withWorker && worker) await waitUntilNoted(worker.id);
  doomed.child.kill('SIGKILL');
  if (withWorker) worker?.child.kill('SIGKILL');
  await doomed.exited;
  coordinators = [survivor, await startCoordinator()];
  if (withWorker) workers = [...workers.filter((w) => w !== worker), await startWorker()];
  return survivor;
}

async function waitUntilNoted(workerId: string): Promise<void> {
  const client = createRedis(redis.url);
  try {
    await waitFor(
      'the call noted as running',
      async () => (await client.hlen(`toolq:running:${workerId}`)) > 0,
    );
  } finally {
    client.disconnect();
  }
}

async function finishedCall(url: string, runId: string) {
  const { events } = await readSse(url, `/v1/runs/${runId}/events`, { token: TOKEN });
  return events.find((e) => e.event === 'tool_finished')?.data;
}

describe('a durable run whose coordinator dies while an at-most-once call runs', () => {
  it('its worker alive: the new owner waits for the call, which started once, and the run ends', async () => {
    const runId = await startRun(coordinators[0]?.url ?? '', 'pay:alive:3000');
    const survivor = await killOwnerMidCall(runId, 'alive');
    const run = await waitForRun(survivor.url, runId, TOKEN, 60_000);
    expect(run).toMatchObject({ status: 'done', takeovers: 1 });
    expect(startsOf('alive')).toHaveLength(1);
    expect(await finishedCall(survivor.url, runId)).toMatchObject({ outcome: 'ok', is_error: false });
  }, 90_000);

  it('its worker dead too: the call is answered "outcome unknown" and never started again', async () => {
    const runId = await startRun(coordinators[0]?.url ?? '', 'pay:both:6000');
    const survivor = await killOwnerMidCall(runId, 'both', true);
    const run = await waitForRun(survivor.url, runId, TOKEN, 60_000);
    expect(run).toMatchObject({ status: 'done', takeovers: 1 });
    expect(startsOf('both')).toHaveLength(1);
    expect(await finishedCall(survivor.url, runId)).toMatchObject({ outcome: 'unknown', is_error: true });
  }, 90_000);

  it('an at-least-once call whose worker died too runs again on another worker, with the same idempotency key', async () => {
    const runId = await startRun(coordinators[0]?.url ?? '', 'look:again:6000');
    const survivor = await killOwnerMidCall(runId, 'again', true);
    const run = await waitForRun(survivor.url, runId, TOKEN, 60_000);
    expect(run).toMatchObject({ status: 'done', takeovers: 1 });
    const starts = startsOf('again');
    expect(starts).toHaveLength(2);
    expect(starts[0]?.pid).not.toBe(starts[1]?.pid);
    expect(starts[0]?.key).toBe(starts[1]?.key);
    expect(await finishedCall(survivor.url, runId)).toMatchObject({ outcome: 'ok', is_error: false });
  }, 90_000);
});
