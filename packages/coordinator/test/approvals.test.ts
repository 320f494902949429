/**
 * Approvals of batches across two real coordinator processes and a real worker process on one
 * Redis: only the risky call of a mixed batch waits; an app lists and decides only its own
 * approvals, on either coordinator; approve, deny with a reason, expiry, and 409 on a second
 * decision. The worker's execution log tells a call that never started from one that ran.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Approval } from '@toolq/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api, executions } from './runs-support.ts';

const ALPHA = 'alpha-token-0123456789abcdef';
const BETA = 'beta-token-0123456789abcdef0';
const TOOLS = fileURLToPath(new URL('../../../test-support/approval-tools.ts', import.meta.url));

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;
let redis: RedisServer;
let worker: WorkerProcess;
let a: Coordinator;
let b: Coordinator;
let dir: string;
let log: string;

interface BatchAnswer {
  batch_id: string;
  tool_results: { tool_use_id: string; content: unknown; is_error?: boolean }[];
  stats: { calls: { toolUseId: string; outcome: string }[] };
  approvals?: {
    approval_id: string;
    status: string;
    decided_by?: string;
    decided_at?: number;
    reason?: string;
  }[];
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-approvals-'));
  log = join(dir, 'executions.log');
  redis = await startRedisServer();
  worker = await startWorkerProcess({
    redisUrl: redis.url,
    tools: TOOLS,
    concurrency: 4,
    env: { TOOLQ_TEST_EXECUTIONS: log },
  });
  const env = { REDIS_URL: redis.url, TOOLQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA}` };
  [a, b] = await Promise.all([startCoordinatorProcess(env), startCoordinatorProcess(env)]);
}, 60_000);

afterAll(async () => {
  for (const c of [a, b]) c?.child.kill('SIGKILL');
  await Promise.all([a?.exited, b?.exited]);
  await worker?.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ran = (line: string) => executions(log).filter((l) => l === line).length;

function sendBatch(url: string, body: Record<string, unknown>, token = ALPHA) {
  return api(url, '/v1/tool-batches', { method: 'POST', token, body }).then(async (res) => ({
    status: res.status,
    body: (await res.json()) as BatchAnswer,
  }));
}

async function pending(url: string, token = ALPHA): Promise<Approval[]> {
  const res = await api(url, '/v1/approvals', { token });
  expect(res.status).toBe(200);
  return ((await res.json()) as { approvals: Approval[] }).approvals;
}

const waitForApproval = (url: string, toolUseId: string) =>
  waitFor(`an approval for ${toolUseId}`, async () =>
    (await pending(url)).find((p) => p.tool_use_id === toolUseId),
  );

const decide = (url: string, id: string, body: unknown, token = ALPHA) =>
  api(url, `/v1/approvals/${id}`, { method: 'POST', token, body });

describe('a batch with a call that needs approval', () => {
  it('runs the other calls at once; only the risky call waits, and runs once when approved on another coordinator', async () => {
    const answer = sendBatch(a.url, {
      batch_id: 'mixed-1',
      tool_uses: [
        { type: 'tool_use', id: 'look1', name: 'test_lookup', input: { key: 'balance' } },
        { type: 'tool_use', id: 'pay-big', name: 'test_pay', input: { amount: 500, to: 'acme' } },
        { type: 'tool_use', id: 'pay-small', name: 'test_pay', input: { amount: 5, to: 'acme' } },
      ],
    });
    const approval = await waitForApproval(b.url, 'pay-big');
    expect(approval).toEqual({
      approval_id: expect.stringMatching(/^apr_[0-9a-f]{24}$/),
      tool: 'test_pay',
      input: { amount: 500, to: 'acme' },
      tool_use_id: 'pay-big',
      batch_id: 'mixed-1',
      requested_at: expect.any(Number),
      expires_at: approval.requested_at + 300_000,
    });
    // The calls that need no approval ran while the risky one waits; it never started.
    await waitFor('the lookup and the small payment to run', () =>
      ran('lookup balance') === 1 && ran('pay acme 5') === 1 ? true : undefined,
    );
    expect(ran('pay acme 500')).toBe(0);
    expect((await pending(a.url)).map((p) => p.tool_use_id)).toEqual(['pay-big']);

    const before = Date.now();
    const res = await decide(b.url, approval.approval_id, { decision: 'approve', reason: 'invoice 42' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      approval_id: approval.approval_id,
      status: 'approved',
      decided_by: 'app:alpha',
      reason: 'invoice 42',
    });
    const again = await decide(a.url, approval.approval_id, { decision: 'deny', reason: 'too late' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('APPROVAL_DECIDED');

    const { status, body } = await answer;
    expect(status).toBe(200);
    expect(body.tool_results.map((r) => [r.tool_use_id, r.is_error ?? false, r.content])).toEqual([
      ['look1', false, 'value of balance'],
      ['pay-big', false, 'paid 500 to acme'],
      ['pay-small', false, 'paid 5 to acme'],
    ]);
    expect(body.approvals).toEqual([
      {
        approval_id: approval.approval_id,
        tool_use_id: 'pay-big',
        tool: 'test_pay',
        status: 'approved',
        decided_by: 'app:alpha',
        decided_at: expect.any(Number),
        reason: 'invoice 42',
      },
    ]);
    expect(body.approvals?.[0]?.decided_at).toBeGreaterThanOrEqual(before);
    expect(ran('pay acme 500')).toBe(1);
    expect(await pending(a.url)).toEqual([]);
    // The decision is in the batch's record: collected on the other coordinator, the batch says who decided.
    const collected = await api(b.url, '/v1/tool-batches/mixed-1', { token: ALPHA });
    expect(collected.status).toBe(200);
    expect(((await collected.json()) as BatchAnswer).approvals).toEqual(body.approvals);
  });

  it("lists and decides an app's approvals only for that app: another app's and unknown ids are 404", async () => {
    const answer = sendBatch(a.url, {
      tool_uses: [{ id: 'wipe-iso', name: 'test_wipe', input: { path: '/tmp/iso' } }],
    });
    const approval = await waitForApproval(a.url, 'wipe-iso');
    expect(await pending(b.url, BETA)).toEqual([]);
    for (const url of [a.url, b.url]) {
      const foreign = await decide(url, approval.approval_id, { decision: 'approve' }, BETA);
      expect(foreign.status).toBe(404);
      const unknown = await decide(url, 'apr_0123456789abcdef01234567', { decision: 'approve' });
      expect(unknown.status).toBe(404);
    }
    expect(ran('wipe /tmp/iso')).toBe(0);
    // Malformed decisions name what is wrong.
    const wrong = await decide(a.url, approval.approval_id, { decision: 'maybe' });
    expect(wrong.status).toBe(400);
    expect(await wrong.text()).toMatch(/decision/);
    const badId = await decide(a.url, 'not-an-id', { decision: 'approve' });
    expect(badId.status).toBe(400);
    // Still pending for its own app: it decides.
    expect((await decide(b.url, approval.approval_id, { decision: 'approve' })).status).toBe(200);
    expect((await answer).body.tool_results[0]?.content).toBe('wiped /tmp/iso');
  });

  it('answers a denied call is_error with the reason, and never starts it', async () => {
    const answer = sendBatch(b.url, {
      tool_uses: [
        { id: 'wipe-deny', name: 'test_wipe', input: { path: '/srv/data' } },
        { id: 'look-deny', name: 'test_lookup', input: { key: 'deny' } },
      ],
    });
    const approval = await waitForApproval(a.url, 'wipe-deny');
    const res = await decide(a.url, approval.approval_id, {
      decision: 'deny',
      reason: 'production data, not today',
      decided_by: 'alice',
    });
    expect(res.status).toBe(200);
    const { body } = await answer;
    const [denied, other] = body.tool_results;
    expect(denied?.is_error).toBe(true);
    expect(denied?.content).toMatch(/alice.*denied.*production data, not today/);
    expect(other).toMatchObject({ tool_use_id: 'look-deny', content: 'value of deny' });
    expect(body.approvals?.[0]).toMatchObject({
      status: 'denied',
      decided_by: 'alice',
      reason: 'production data, not today',
    });
    expect(ran('wipe /srv/data')).toBe(0);
    expect((await decide(b.url, approval.approval_id, { decision: 'approve' })).status).toBe(409);
  });

  it('answers an expired approval is_error saying it expired (not denied); the call never starts; a later decision is 409', async () => {
    const { status, body } = await sendBatch(a.url, {
      // A caller's own list: this time the lookup needs approval too.
      approval_tools: ['test_lookup'],
      approval_timeout_ms: 1_500,
      tool_uses: [{ id: 'look-expire', name: 'test_lookup', input: { key: 'secret' } }],
    });
    expect(status).toBe(200);
    const [expired] = body.tool_results;
    expect(expired?.is_error).toBe(true);
    expect(expired?.content).toMatch(/expired after 1\.5 s: nobody decided in time \(it was not refused\)/);
    expect(expired?.content).not.toMatch(/denied/);
    expect(body.approvals?.[0]).toMatchObject({ status: 'expired' });
    expect(ran('lookup secret')).toBe(0);
    const id = body.approvals?.[0]?.approval_id ?? '';
    expect((await decide(b.url, id, { decision: 'approve' })).status).toBe(409);
    expect(ran('lookup secret')).toBe(0);
  });

  it('refuses a malformed approval option with a 400 naming it', async () => {
    const res = await api(a.url, '/v1/tool-batches', {
      method: 'POST',
      token: ALPHA,
      body: { approval_timeout_ms: 0, tool_uses: [{ id: 'x', name: 'test_lookup', input: { key: 'x' } }] },
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/approval_timeout_ms/);
  });
});
