/**
 * A durable run waiting for approval holds no run slot and no coordinator: real coordinator and
 * worker processes, Redis, and the real SDK against the scripted model. The coordinator that runs
 * the runs has one run slot (TOOLQ_RUN_CONCURRENCY=1): a run whose payment waits for approval
 * parks, another run started after it runs to its end on that same slot meanwhile, and the
 * approval, decided on a coordinator that runs no runs, wakes the parked run, which finishes with
 * each call run once and each model turn asked once. An approval that expires while its run is
 * parked wakes it too. And a decider that dies after winning the decision, before the approved
 * call's job is sent: the expiry sweep sends it, once, long before the approval's expiry. A parked
 * run cancelled ends at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { createRedis, type Redis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { ApprovalStore } from '../src/approvals/approval-store.ts';
import { api, executions, getRun, promptOf, readSse, type SseEvent, waitForRun } from './runs-support.ts';

const ALPHA = 'alpha-token-0123456789abcdef';
const OPS = 'ops-token-0123456789abcdef012';
const TOOL_NAMES = ['test_lookup', 'test_pay'];
const TOOLS = fileURLToPath(new URL('../../../test-support/approval-tools.ts', import.meta.url));

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;
let redis: RedisServer;
let client: Redis;
let model: ScriptedModel;
let worker: WorkerProcess;
/** Runs the runs, one at a time. */
let runner: Coordinator;
/** Runs no runs (no model): decides approvals. */
let desk: Coordinator;
let dir: string;
let log: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-approval-park-'));
  log = join(dir, 'executions.log');
  redis = await startRedisServer();
  client = createRedis(redis.url);
  model = await startScriptedModel((ctx) => {
    const label = promptOf(ctx.body);
    // `quick:<label>`: one lookup, then the answer. Anything else: a lookup and a payment that waits.
    const calls = label.startsWith('quick:')
      ? [{ name: 'test_lookup', input: { key: label } }]
      : [
          { name: 'test_lookup', input: { key: `balance-${label}` } },
          { name: 'test_pay', input: { amount: 900, to: label } },
        ];
    return toolTurnsScript([{ text: 'Working on it.', calls }])(ctx);
  });
  worker = await startWorkerProcess({
    redisUrl: redis.url,
    tools: TOOLS,
    concurrency: 4,
    env: { TOOLQ_TEST_EXECUTIONS: log },
  });
  const env = {
    REDIS_URL: redis.url,
    TOOLQ_API_TOKENS: `alpha:${ALPHA}`,
    TOOLQ_OPERATOR_TOKENS: `ops:${OPS}`,
    TOOLQ_RUN_TAKEOVER_MS: '3000',
  };
  [runner, desk] = await Promise.all([
    startCoordinatorProcess({
      ...env,
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      TOOLQ_RUN_CONCURRENCY: '1',
      TOOLQ_RUN_PARK_MIN_MS: '3000',
    }),
    startCoordinatorProcess(env),
  ]);
}, 60_000);

afterAll(async () => {
  for (const x of [runner, desk]) x?.child.kill('SIGKILL');
  await Promise.all([runner?.exited, desk?.exited]);
  await worker?.stop();
  await model?.close();
  client?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ran = (line: string) => executions(log).filter((l) => l === line).length;

interface Approval {
  approval_id: string;
  tool: string;
  tool_use_id: string;
  run_id?: string;
}

const pending = async (url: string) =>
  ((await (await api(url, '/v1/approvals', { token: ALPHA })).json()) as { approvals: Approval[] }).approvals;

async function startRun(prompt: string, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await api(runner.url, '/v1/runs', {
    method: 'POST',
    token: ALPHA,
    body: { prompt, tools: TOOL_NAMES, ...extra },
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { run_id: string }).run_id;
}

const parkedAt = (runId: string) =>
  waitFor(`run ${runId} to park`, async () => {
    const run = (await getRun(desk.url, runId, ALPHA)) as { parked_at?: string };
    return run.parked_at;
  });

/** The model's requests for a prompt: how many messages each had (one request per turn: [1, 3]). */
const turns = (prompt: string) =>
  model.requests
    .filter((r) => promptOf(r) === prompt)
    .map((r) => (r.body as { messages: unknown[] }).messages.length);

const types = (events: SseEvent[]) => events.map((e) => e.event);

/** A sample of a coordinator's /metrics with these labels (among others), 0 when absent. */
async function sample(url: string, name: string, labels: Record<string, string>): Promise<number> {
  const res = await api(url, '/metrics', { token: OPS });
  expect(res.status).toBe(200);
  const text = await res.text();
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && pairs.every((p) => l.includes(p)));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('a run waiting for approval parks', () => {
  it('frees its run slot: another run finishes on the same coordinator meanwhile; approved elsewhere, it finishes, each call and turn once', async () => {
    const runA = await startRun('initech');
    const approval = await waitFor('the payment to wait for approval', async () =>
      (await pending(desk.url)).find((p) => p.run_id === runA),
    );
    await parkedAt(runA);
    // The fleet's figure, from Redis: the coordinator that runs no runs reports it too.
    expect(await sample(desk.url, 'toolq_approvals_pending', { tool: 'test_pay' })).toBe(1);
    expect(await sample(runner.url, 'toolq_approvals_pending', { tool: 'test_pay' })).toBe(1);
    expect(ran('lookup balance-initech')).toBe(1);
    expect(ran('pay initech 900')).toBe(0);

    // The runner has one run slot: run B can only run if run A gave it back.
    const runB = await startRun('quick:b');
    const b = await waitForRun(desk.url, runB, ALPHA, 60_000);
    expect(b.status).toBe('done');
    expect(b.coordinator).toBe(runner.id);
    expect(ran('lookup quick:b')).toBe(1);
    // Still parked, still pending, nothing of it ran again meanwhile.
    expect((await getRun(desk.url, runA, ALPHA)).status).toBe('running');
    expect((await pending(desk.url)).map((p) => p.approval_id)).toContain(approval.approval_id);

    const decided = await api(desk.url, `/v1/approvals/${approval.approval_id}`, {
      method: 'POST',
      token: ALPHA,
      body: { decision: 'approve', reason: 'invoice checked', decided_by: 'carol' },
    });
    expect(decided.status).toBe(200);
    expect(await sample(desk.url, 'toolq_approvals_pending', { tool: 'test_pay' })).toBe(0);
    // Counted once, by the coordinator that acted on the decision.
    expect(
      await sample(desk.url, 'toolq_approvals_decided_total', { tool: 'test_pay', status: 'approved' }),
    ).toBe(1);
    expect(
      await sample(runner.url, 'toolq_approvals_decided_total', { tool: 'test_pay', status: 'approved' }),
    ).toBe(0);
    const a = await waitForRun(desk.url, runA, ALPHA, 60_000);
    expect(a.status).toBe('done');
    expect(a.takeovers).toBe(0); // a wake is not a takeover
    expect(ran('lookup balance-initech')).toBe(1);
    expect(ran('pay initech 900')).toBe(1);
    expect(turns('initech')).toEqual([1, 3]);
    const second = model.requests.filter((r) => promptOf(r) === 'initech')[1];
    const results = JSON.stringify((second?.body as { messages?: unknown[] } | undefined)?.messages?.[2]);
    expect(results).toContain('paid 900 to initech');
    expect(results).toContain('value of balance-initech');

    const { events } = await readSse(desk.url, `/v1/runs/${runA}/events`, { token: ALPHA });
    const order = types(events);
    const at = (type: string) => order.indexOf(type);
    expect(at('approval_requested')).toBeGreaterThan(-1);
    expect(at('approval_requested')).toBeLessThan(at('run_parked'));
    expect(at('run_parked')).toBeLessThan(at('approval_decided'));
    expect(at('approval_decided')).toBeLessThan(at('run_resumed'));
    expect(order.at(-1)).toBe('done');
    expect(order.filter((t) => t === 'approval_decided')).toHaveLength(1);
    expect(events.find((e) => e.event === 'run_parked')?.data).toMatchObject({
      approval_ids: [approval.approval_id],
      wake_by: expect.any(Number),
    });
    expect(events.find((e) => e.event === 'run_resumed')?.data).toMatchObject({
      owner_epoch: 2,
      parked_ms: expect.any(Number),
      pending_calls: 2,
    });
    // Each call started once in the run's log too.
    const started = events.filter((e) => e.event === 'tool_started').map((e) => e.data.tool);
    expect(started.sort()).toEqual(['test_lookup', 'test_pay']);
  });

  it('wakes when the approval expires while it is parked, and answers the model that it expired', async () => {
    const runC = await startRun('vandelay', { approval_timeout_ms: 8_000 });
    await parkedAt(runC);
    const run = await waitForRun(desk.url, runC, ALPHA, 60_000);
    expect(run.status).toBe('done');
    expect(ran('pay vandelay 900')).toBe(0);
    expect(ran('lookup balance-vandelay')).toBe(1);
    expect(turns('vandelay')).toEqual([1, 3]);
    const second = model.requests.filter((r) => promptOf(r) === 'vandelay')[1];
    const results = JSON.stringify((second?.body as { messages?: unknown[] } | undefined)?.messages?.[2]);
    expect(results).toContain('expired after 8 s: nobody decided in time (it was not refused)');
    const { events } = await readSse(desk.url, `/v1/runs/${runC}/events`, { token: ALPHA });
    const order = types(events);
    expect(order.indexOf('run_parked')).toBeLessThan(order.indexOf('approval_expired'));
    expect(order.indexOf('approval_expired')).toBeLessThan(order.indexOf('run_resumed'));
    expect(order).not.toContain('approval_decided');
  });
});

describe('a parked run cancelled', () => {
  it('ends at once: its job leaves the delayed set, its approval is no longer listed, nothing more runs', async () => {
    const runD = await startRun('dunder');
    const approval = await waitFor('the payment to wait for approval', async () =>
      (await pending(desk.url)).find((p) => p.run_id === runD),
    );
    await parkedAt(runD);
    const job = `toolq:{runs/agent}:${runD}`;
    expect(await client.zscore('toolq:{runs/agent}:delayed', runD)).not.toBeNull();
    expect((await api(desk.url, `/v1/runs/${runD}`, { method: 'DELETE', token: ALPHA })).status).toBe(200);
    // Woken, claimed, found cancelled: the job ends now, not at the approval's expiry (24 h).
    await waitFor('the parked job to end', async () => (await client.exists(job)) === 0 || undefined);
    expect((await getRun(desk.url, runD, ALPHA)).status).toBe('cancelled');
    expect((await pending(desk.url)).map((p) => p.approval_id)).not.toContain(approval.approval_id);
    expect(ran('pay dunder 900')).toBe(0);
    expect(turns('dunder')).toEqual([1]);
  });
});

describe('a decider that dies after winning the decision', () => {
  const store = () => new ApprovalStore(client, 'toolq');

  /** A batch whose payment waits (expiry in two minutes); resolves with the batch's answer. */
  async function heldPayment(id: string) {
    const answer = api(desk.url, '/v1/tool-batches', {
      method: 'POST',
      token: ALPHA,
      body: {
        tool_uses: [{ type: 'tool_use', id, name: 'test_pay', input: { amount: 700, to: id } }],
        approval_timeout_ms: 120_000,
      },
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> }));
    const approval = await waitFor(`the approval of ${id}`, async () =>
      (await pending(desk.url)).find((p) => p.tool_use_id === id),
    );
    return { answer, approval };
  }

  // What Approvals.decide does before it acts on the decision, in its order; then the "decider" dies.
  async function decideAndDie(approvalId: string, claimed: boolean): Promise<void> {
    const s = store();
    const found = await s.get(approvalId);
    if (!found) throw new Error(`no approval ${approvalId}`);
    await s.dueAt(approvalId, Math.min(Date.now() + 5_000, found.expiresAt));
    expect(await s.decide('alpha', approvalId, 'approved', 'dave', Date.now(), 'ok')).toBe('ok');
    if (claimed) expect(await s.claimApply(approvalId)).toBe('claimed');
  }

  for (const claimed of [false, true]) {
    it(`has its approved call sent once by the sweep (${claimed ? 'after' : 'before'} it claimed the sending), not at the expiry`, async () => {
      const id = `pay-${claimed ? 'claimed' : 'decided'}`;
      const { answer, approval } = await heldPayment(id);
      const decidedAt = Date.now();
      await decideAndDie(approval.approval_id, claimed);
      const { status, body } = await answer;
      expect(status).toBe(200);
      expect(JSON.stringify(body.tool_results)).toContain(`paid 700 to ${id}`);
      expect(ran(`pay ${id} 700`)).toBe(1);
      // Sent by the sweep after the retry delay (and the lapsed lease), far before the 120 s expiry.
      expect(Date.now() - decidedAt).toBeLessThan(60_000);
      // Decided once: a second decision is refused, and nothing runs again.
      const again = await api(desk.url, `/v1/approvals/${approval.approval_id}`, {
        method: 'POST',
        token: ALPHA,
        body: { decision: 'approve' },
      });
      expect(again.status).toBe(409);
      expect(await store().claimApply(approval.approval_id)).toBe('done');
      expect(ran(`pay ${id} 700`)).toBe(1);
    });
  }
});
