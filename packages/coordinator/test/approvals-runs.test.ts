/**
 * A durable run whose payment waits for approval, across two real coordinator processes, a real
 * worker process and the real SDK against the scripted model: its owner is SIGKILLed while the
 * approval is pending; the approval stays pending, is approved on the other coordinator, and the
 * run finishes there with each call run once and each model turn asked once. The run's event
 * stream tells who decided, when and why.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api, executions, getRun, promptOf, readSse, waitForRun } from './runs-support.ts';

const ALPHA = 'alpha-token-0123456789abcdef';
const TOOL_NAMES = ['test_lookup', 'test_pay'];
const TOOLS = fileURLToPath(new URL('../../../test-support/approval-tools.ts', import.meta.url));

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;
let redis: RedisServer;
let model: ScriptedModel;
let worker: WorkerProcess;
let a: Coordinator;
let b: Coordinator;
let c: Coordinator | undefined;
let dir: string;
let log: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-approval-runs-'));
  log = join(dir, 'executions.log');
  redis = await startRedisServer();
  model = await startScriptedModel((ctx) => {
    const label = promptOf(ctx.body);
    return toolTurnsScript([
      {
        text: 'Checking the balance and paying.',
        calls: [
          { name: 'test_lookup', input: { key: `balance-${label}` } },
          { name: 'test_pay', input: { amount: 900, to: label } },
        ],
      },
    ])(ctx);
  });
  worker = await startWorkerProcess({
    redisUrl: redis.url,
    tools: TOOLS,
    concurrency: 4,
    env: { TOOLQ_TEST_EXECUTIONS: log },
  });
  env = {
    REDIS_URL: redis.url,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
    TOOLQ_API_TOKENS: `alpha:${ALPHA}`,
    TOOLQ_RUN_TAKEOVER_MS: '3000',
    // The owner keeps waiting for the approval in its process (as it does for one expiring within
    // TOOLQ_RUN_PARK_MIN_MS): its death mid-wait is what these tests are about. A run that parks
    // instead holds no coordinator at all (approvals-park.test.ts).
    TOOLQ_RUN_PARK_MIN_MS: '2147483647',
  };
  [a, b] = await Promise.all([startCoordinatorProcess(env), startCoordinatorProcess(env)]);
}, 60_000);

afterAll(async () => {
  for (const x of [a, b, c]) x?.child.kill('SIGKILL');
  await Promise.all([a?.exited, b?.exited, c?.exited]);
  await worker?.stop();
  await model?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ran = (line: string) => executions(log).filter((l) => l === line).length;

interface Approval {
  approval_id: string;
  tool: string;
  input: unknown;
  run_id?: string;
  batch_id?: string;
}

const pending = async (url: string) =>
  ((await (await api(url, '/v1/approvals', { token: ALPHA })).json()) as { approvals: Approval[] }).approvals;

describe('a durable run waiting for approval', () => {
  it("survives its coordinator's SIGKILL: approved on the other, it finishes with each call run once and each turn asked once", async () => {
    const prompt = 'globex';
    const started = await api(a.url, '/v1/runs', {
      method: 'POST',
      token: ALPHA,
      body: { prompt, tools: TOOL_NAMES },
    });
    expect(started.status).toBe(202);
    const { run_id: runId } = (await started.json()) as { run_id: string };

    const approval = await waitFor('the payment to wait for approval', async () =>
      (await pending(b.url)).find((p) => p.run_id === runId),
    );
    expect(approval).toMatchObject({ tool: 'test_pay', input: { amount: 900, to: 'globex' }, run_id: runId });
    expect(approval.batch_id).toBeUndefined();
    await waitFor('the lookup to run meanwhile', () => ran('lookup balance-globex') === 1 || undefined);
    expect(ran('pay globex 900')).toBe(0);

    const owner = (await getRun(b.url, runId, ALPHA)).coordinator;
    const [doomed, survivor] = owner === a.id ? [a, b] : [b, a];
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    // Nobody holds the run now; the approval is still there, on the coordinator left.
    expect((await pending(survivor.url)).map((p) => p.approval_id)).toEqual([approval.approval_id]);

    const decided = await api(survivor.url, `/v1/approvals/${approval.approval_id}`, {
      method: 'POST',
      token: ALPHA,
      body: { decision: 'approve', reason: 'budget ok', decided_by: 'bob' },
    });
    expect(decided.status).toBe(200);

    const run = await waitForRun(survivor.url, runId, ALPHA, 60_000);
    expect(run.status).toBe('done');
    expect(run.coordinator).toBe(survivor.id);
    expect(run.takeovers).toBe(1);
    expect(ran('lookup balance-globex')).toBe(1);
    expect(ran('pay globex 900')).toBe(1);
    // One request per turn: the first response was saved before the kill and never asked again.
    const turns = model.requests.filter((r) => promptOf(r) === prompt);
    expect(turns.map((r) => (r.body as { messages: unknown[] }).messages.length)).toEqual([1, 3]);
    const results = JSON.stringify((turns[1]?.body as { messages?: unknown[] } | undefined)?.messages?.[2]);
    expect(results).toContain('paid 900 to globex');

    const { events } = await readSse(survivor.url, `/v1/runs/${runId}/events`, { token: ALPHA });
    const requested = events.find((e) => e.event === 'approval_requested');
    const decidedEvent = events.find((e) => e.event === 'approval_decided');
    expect(requested?.data).toMatchObject({
      approval_id: approval.approval_id,
      tool: 'test_pay',
      input: { amount: 900, to: 'globex' },
      expires_at: expect.any(Number),
    });
    expect(decidedEvent?.data).toMatchObject({
      approval_id: approval.approval_id,
      decision: 'approve',
      decided_by: 'bob',
      reason: 'budget ok',
      decided_at: expect.any(Number),
    });
    const types = events.map((e) => e.event);
    expect(types.indexOf('approval_requested')).toBeLessThan(types.indexOf('approval_decided'));
    expect(types.at(-1)).toBe('done');
  });

  it('answers an expired approval to the model as expired, not denied; the payment never runs; the events say so', async () => {
    const prompt = 'hooli';
    const survivor = [a, b].find((c) => c.child.exitCode === null && c.child.signalCode === null) ?? b;
    const started = await api(survivor.url, '/v1/runs', {
      method: 'POST',
      token: ALPHA,
      body: { prompt, tools: TOOL_NAMES, approval_timeout_ms: 1_500 },
    });
    expect(started.status).toBe(202);
    const { run_id: runId } = (await started.json()) as { run_id: string };
    const run = await waitForRun(survivor.url, runId, ALPHA, 60_000);
    expect(run.status).toBe('done');
    expect(ran('pay hooli 900')).toBe(0);
    expect(ran('lookup balance-hooli')).toBe(1);
    const turns = model.requests.filter((r) => promptOf(r) === prompt);
    const results = JSON.stringify((turns[1]?.body as { messages?: unknown[] } | undefined)?.messages?.[2]);
    expect(results).toContain('expired after 1.5 s: nobody decided in time (it was not refused)');
    const { events } = await readSse(survivor.url, `/v1/runs/${runId}/events`, { token: ALPHA });
    const types = events.map((e) => e.event);
    expect(types).toContain('approval_requested');
    expect(types).toContain('approval_expired');
    expect(types).not.toContain('approval_decided');
    expect(events.find((e) => e.event === 'approval_expired')?.data).toMatchObject({
      tool: 'test_pay',
      expired_at: expect.any(Number),
    });
  });

  it('stays pending through a graceful shutdown (SIGTERM) of the coordinator holding the run', async () => {
    const alive = [a, b].filter((x) => x.child.exitCode === null && x.child.signalCode === null);
    c = await startCoordinatorProcess({ ...env, TOOLQ_SHUTDOWN_TIMEOUT_MS: '1000' });
    const coordinators = [...alive, c];
    const prompt = 'umbrella';
    const started = await api(c.url, '/v1/runs', {
      method: 'POST',
      token: ALPHA,
      body: { prompt, tools: TOOL_NAMES },
    });
    const { run_id: runId } = (await started.json()) as { run_id: string };
    const approval = await waitFor('the payment to wait for approval', async () =>
      (await pending(c?.url ?? '')).find((p) => p.run_id === runId),
    );
    const owner = (await getRun(c.url, runId, ALPHA)).coordinator;
    const leaving = coordinators.find((x) => x.id === owner);
    const staying = coordinators.find((x) => x.id !== owner);
    if (!leaving || !staying) throw new Error(`owner ${owner} is none of the coordinators`);
    leaving.child.kill('SIGTERM');
    await leaving.exited;
    // Handed over, not cancelled: still pending, and deciding it works.
    expect((await pending(staying.url)).map((p) => p.approval_id)).toContain(approval.approval_id);
    const decided = await api(staying.url, `/v1/approvals/${approval.approval_id}`, {
      method: 'POST',
      token: ALPHA,
      body: { decision: 'approve' },
    });
    expect(decided.status).toBe(200);
    const run = await waitForRun(staying.url, runId, ALPHA, 60_000);
    expect(run.status).toBe('done');
    expect(ran('pay umbrella 900')).toBe(1);
    expect(ran('lookup balance-umbrella')).toBe(1);
  });

  it('ends with its run: a cancelled run is no longer listed, and deciding its approval is 409', async () => {
    // Not one an earlier test killed or sent SIGTERM: `killed` is set as the signal is sent, while
    // exitCode stays null until the process is gone (a SIGTERMed coordinator still drains).
    const url = [c, a, b].find(
      (x) => x !== undefined && !x.child.killed && x.child.exitCode === null && x.child.signalCode === null,
    )?.url;
    if (!url) throw new Error('no coordinator left');
    const started = await api(url, '/v1/runs', {
      method: 'POST',
      token: ALPHA,
      body: { prompt: 'soylent', tools: TOOL_NAMES },
    });
    const { run_id: runId } = (await started.json()) as { run_id: string };
    const approval = await waitFor('the payment to wait for approval', async () =>
      (await pending(url)).find((p) => p.run_id === runId),
    );
    expect((await api(url, `/v1/runs/${runId}`, { method: 'DELETE', token: ALPHA })).status).toBe(200);
    const res = await api(url, `/v1/approvals/${approval.approval_id}`, {
      method: 'POST',
      token: ALPHA,
      body: { decision: 'approve' },
    });
    expect(res.status).toBe(409);
    expect(await res.text()).toMatch(/its run is no longer running/);
    expect((await pending(url)).map((p) => p.approval_id)).not.toContain(approval.approval_id);
    expect(ran('pay soylent 900')).toBe(0);
  });
});
