/**
 * Issue 21 on a real Redis Cluster: two coordinator processes and a worker process, every key
 * where the Cluster puts it (an approval's record, the app's pending index and the expiry index
 * each on a slot of their own). A mixed batch's risky call waits while the others run; it is
 * listed and approved through the other coordinator and runs once; deny and expiry are answered
 * as on one Redis; and a pending approval whose master is SIGKILLed stays pending on the promoted
 * replica, then runs once when approved (docs/approvals.md, "Redis failover").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Approval } from '@toolq/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisCluster, startRedisCluster } from '../../../test-support/redis-cluster.ts';
import { infoFields } from '../../../test-support/redis-processes.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api, executions } from './runs-support.ts';

const ALPHA = 'alpha-token-0123456789abcdef';
const TOOLS = fileURLToPath(new URL('../../../test-support/approval-tools.ts', import.meta.url));

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;
let cluster: RedisCluster;
let worker: WorkerProcess;
let a: Coordinator;
let b: Coordinator;
let dir: string;
let log: string;

interface BatchAnswer {
  tool_results: { tool_use_id: string; content: unknown; is_error?: boolean }[];
  approvals?: { approval_id: string; status: string; decided_by?: string; reason?: string }[];
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-cluster-approvals-'));
  log = join(dir, 'executions.log');
  cluster = await startRedisCluster();
  worker = await startWorkerProcess({
    redisUrl: cluster.urlOf(cluster.nodes[0]?.port ?? 0), // ignored: REDIS_CLUSTER_NODES wins
    tools: TOOLS,
    concurrency: 4,
    env: { ...cluster.env, TOOLQ_TEST_EXECUTIONS: log },
  });
  const env = { ...cluster.env, TOOLQ_API_TOKENS: `alpha:${ALPHA}` };
  [a, b] = await Promise.all([startCoordinatorProcess(env), startCoordinatorProcess(env)]);
}, 120_000);

afterAll(async () => {
  for (const c of [a, b]) c?.child.kill('SIGKILL');
  await Promise.all([a?.exited, b?.exited]);
  await worker?.stop('SIGKILL');
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ran = (line: string) => executions(log).filter((l) => l === line).length;

function sendBatch(url: string, body: Record<string, unknown>) {
  return api(url, '/v1/tool-batches', { method: 'POST', token: ALPHA, body }).then(async (res) => ({
    status: res.status,
    body: (await res.json()) as BatchAnswer,
  }));
}

/** Listing requests that got no answer within 10 s (a coordinator stuck on a failover). */
let unanswered = 0;

/** The app's pending approvals; undefined while the coordinator cannot answer (a failover). */
async function pending(url: string): Promise<Approval[] | undefined> {
  const res = await fetch(`${url}/v1/approvals`, {
    headers: { authorization: `Bearer ${ALPHA}` },
    signal: AbortSignal.timeout(10_000),
  }).catch((err: Error) => {
    if (err.name === 'TimeoutError') unanswered++;
    return undefined;
  });
  if (res?.status !== 200) return undefined;
  return ((await res.json()) as { approvals: Approval[] }).approvals;
}

const waitForApproval = (url: string, toolUseId: string, timeoutMs = 30_000) =>
  waitFor(
    `an approval for ${toolUseId}`,
    async () => (await pending(url))?.find((p) => p.tool_use_id === toolUseId),
    timeoutMs,
  );

const decide = (url: string, id: string, body: unknown) =>
  api(url, `/v1/approvals/${id}`, { method: 'POST', token: ALPHA, body });

/** What Redis holds of a batch that was not answered in time: every key naming its uid, on every master. */
async function dumpBatch(uid: string): Promise<void> {
  const out: Record<string, unknown> = { ran: executions(log) };
  for (const node of (await cluster.topology()).filter((n) => n.role === 'master' && !n.failed)) {
    const keys = (await cluster.command(node.port, ['keys', `*${uid}*`])) as string[];
    for (const key of keys) {
      const type = String(await cluster.command(node.port, ['type', key]));
      out[`${node.port} ${key}`] =
        type === 'hash' ? await cluster.command(node.port, ['hgetall', key]) : type;
    }
  }
  console.info('the unanswered batch in Redis:', JSON.stringify(out));
}

describe('approvals on a Redis Cluster, across two coordinators', () => {
  it('only the risky call waits; listed and approved through the other coordinator, it runs once', async () => {
    const answer = sendBatch(a.url, {
      tool_uses: [
        { id: 'look1', name: 'test_lookup', input: { key: 'balance' } },
        { id: 'pay-big', name: 'test_pay', input: { amount: 500, to: 'acme' } },
        { id: 'pay-small', name: 'test_pay', input: { amount: 5, to: 'acme' } },
      ],
    });
    const approval = await waitForApproval(b.url, 'pay-big');
    expect(approval).toMatchObject({ tool: 'test_pay', input: { amount: 500, to: 'acme' } });
    await waitFor('the lookup and the small payment to run', () =>
      ran('lookup balance') === 1 && ran('pay acme 5') === 1 ? true : undefined,
    );
    expect(ran('pay acme 500')).toBe(0);
    const res = await decide(b.url, approval.approval_id, { decision: 'approve', reason: 'invoice 42' });
    expect(res.status).toBe(200);
    expect((await decide(a.url, approval.approval_id, { decision: 'deny' })).status).toBe(409);
    const { status, body } = await answer;
    expect(status).toBe(200);
    expect(body.tool_results.map((r) => [r.tool_use_id, r.is_error ?? false, r.content])).toEqual([
      ['look1', false, 'value of balance'],
      ['pay-big', false, 'paid 500 to acme'],
      ['pay-small', false, 'paid 5 to acme'],
    ]);
    expect(body.approvals?.[0]).toMatchObject({ status: 'approved', reason: 'invoice 42' });
    expect(ran('pay acme 500')).toBe(1);
  });

  it('a denial carries its reason and an expiry says it expired; neither call starts', async () => {
    const denied = sendBatch(b.url, {
      tool_uses: [
        { id: 'wipe-deny', name: 'test_wipe', input: { path: '/srv/data' } },
        { id: 'look-deny', name: 'test_lookup', input: { key: 'deny' } },
      ],
    });
    const approval = await waitForApproval(a.url, 'wipe-deny');
    const res = await decide(a.url, approval.approval_id, { decision: 'deny', reason: 'not today' });
    expect(res.status).toBe(200);
    const { body } = await denied;
    expect(body.tool_results[0]?.is_error).toBe(true);
    expect(body.tool_results[0]?.content).toMatch(/denied.*not today/);
    expect(body.tool_results[1]).toMatchObject({ content: 'value of deny' });
    const expired = await sendBatch(a.url, {
      approval_tools: ['test_lookup'],
      approval_timeout_ms: 1_500,
      tool_uses: [{ id: 'look-expire', name: 'test_lookup', input: { key: 'secret' } }],
    });
    expect(expired.body.tool_results[0]?.is_error).toBe(true);
    expect(expired.body.tool_results[0]?.content).toMatch(/expired after 1\.5 s/);
    expect(expired.body.tool_results[0]?.content).not.toMatch(/denied/);
    expect(ran('wipe /srv/data')).toBe(0);
    expect(ran('lookup secret')).toBe(0);
  });

  it('a pending approval whose master is SIGKILLed stays pending on the promoted replica; approved, its call runs once', async () => {
    // An approval whose record is on the master of the worker's pool queue: the SIGKILL also hits
    // the worker idle in BZPOPMIN there, which must take the approved call after the promotion
    // (packages/worker/test/cluster-idle-failover.test.ts tests that alone).
    const poolMaster = (await cluster.masterOf('toolq:{default}:x')).port;
    let attempt = 0;
    let answer: ReturnType<typeof sendBatch>;
    let approval: Approval;
    for (;;) {
      const path = `/tmp/failover${attempt}`;
      answer = sendBatch(a.url, { tool_uses: [{ id: 'wipe-failover', name: 'test_wipe', input: { path } }] });
      approval = await waitForApproval(b.url, 'wipe-failover');
      if ((await cluster.masterOf(`toolq:approval:${approval.approval_id}`)).port === poolMaster) break;
      expect(attempt++).toBeLessThan(25); // each lands there 1 time in 3
      expect((await decide(b.url, approval.approval_id, { decision: 'deny', reason: 'next' })).status).toBe(
        200,
      );
      expect((await answer).body.tool_results[0]?.is_error).toBe(true);
    }
    const path = `/tmp/failover${attempt}`;
    const master = await cluster.masterOf(`toolq:approval:${approval.approval_id}`);
    const replica = await cluster.replicaOf(master);
    // Replication is asynchronous: the approval is written on the replica before the kill (what
    // one written in the last milliseconds before a failover may lack: docs/approvals.md).
    await waitFor('the replica to have every write of its master', async () => {
      const sent = infoFields(await cluster.command(master.port, ['info', 'replication']));
      const got = infoFields(await cluster.command(replica.port, ['info', 'replication']));
      return Number(got.get('slave_repl_offset')) >= Number(sent.get('master_repl_offset'));
    });
    const faultAt = Date.now();
    await cluster.processOf(master.port).kill();
    await waitFor(
      'the replica to be promoted',
      async () => (await cluster.masterOf(`toolq:approval:${approval.approval_id}`)).port === replica.port,
      30_000,
    );
    const promotedMs = Date.now() - faultAt;
    // Still pending, listed by both coordinators; nothing ran.
    const after = await waitForApproval(b.url, 'wipe-failover');
    expect(after).toEqual(approval);
    expect((await waitForApproval(a.url, 'wipe-failover')).approval_id).toBe(approval.approval_id);
    expect(ran(`wipe ${path}`)).toBe(0);
    const res = await decide(b.url, approval.approval_id, {
      decision: 'approve',
      reason: 'after the failover',
    });
    expect(res.status).toBe(200);
    const late = setTimeout(() => void dumpBatch(approval.batch_id ?? ''), 30_000);
    const { status, body } = await answer.finally(() => clearTimeout(late));
    console.info(
      `cluster approvals: the master of a pending approval SIGKILLed, replica promoted in ${promotedMs} ms; ` +
        `the approval stayed pending; approved, the batch answered ${Date.now() - faultAt} ms after the kill; ` +
        `${unanswered} listing requests unanswered within 10 s`,
    );
    expect(status).toBe(200);
    expect(body.tool_results).toEqual([
      { type: 'tool_result', tool_use_id: 'wipe-failover', content: `wiped ${path}` },
    ]);
    expect(ran(`wipe ${path}`)).toBe(1);
    expect((await decide(a.url, approval.approval_id, { decision: 'deny' })).status).toBe(409);
  }, 120_000);
});
