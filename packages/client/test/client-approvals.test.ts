/**
 * @toolq/client against a real coordinator process and worker process: a batch whose payment
 * waits for approval, listed and approved through the client; a second decision is a typed 409;
 * malformed decisions are refused before anything is sent.
 */
import { fileURLToPath } from 'node:url';
import { ToolqClient, ToolqHttpError, ToolqOptionError } from '@toolq/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const TOKEN = 'client-approvals-token-0123456789';
const TOOLS = fileURLToPath(new URL('../../../test-support/approval-tools.ts', import.meta.url));
let redis: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let client: ToolqClient;

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startWorkerProcess({ redisUrl: redis.url, tools: TOOLS });
  coordinator = await startCoordinatorProcess({ REDIS_URL: redis.url, TOOLQ_API_TOKEN: TOKEN });
  client = new ToolqClient({ baseUrl: coordinator.url, token: TOKEN });
}, 60_000);

afterAll(async () => {
  coordinator?.child.kill('SIGKILL');
  await coordinator?.exited;
  await worker?.stop();
  await redis?.stop();
});

describe('approvals through the client', () => {
  it('lists a waiting call and approves it; the batch answers with the decision', async () => {
    const batch = client.createToolBatch(
      [
        { type: 'tool_use', id: 'pay-c', name: 'test_pay', input: { amount: 700, to: 'acme' } },
        { type: 'tool_use', id: 'look-c', name: 'test_lookup', input: { key: 'c' } },
      ],
      { approvalTimeoutMs: 120_000, timeoutMs: 150_000 },
    );
    const [waiting] = await waitFor('the payment to wait', async () => {
      const list = await client.listApprovals();
      return list.length > 0 ? list : undefined;
    });
    expect(waiting).toMatchObject({
      tool: 'test_pay',
      tool_use_id: 'pay-c',
      input: { amount: 700, to: 'acme' },
    });
    expect((waiting?.expires_at ?? 0) - (waiting?.requested_at ?? 0)).toBe(120_000);
    const id = waiting?.approval_id ?? '';
    const decided = await client.decideApproval(id, {
      decision: 'approve',
      reason: 'ok',
      decided_by: 'dana',
    });
    expect(decided).toMatchObject({ approval_id: id, status: 'approved', decided_by: 'dana', reason: 'ok' });
    const second = await client.decideApproval(id, { decision: 'deny' }).catch((err: unknown) => err);
    expect(second).toBeInstanceOf(ToolqHttpError);
    expect(second).toMatchObject({ status: 409, code: 'APPROVAL_DECIDED' });
    const answer = await batch;
    expect(answer.tool_results.map((r) => r.content)).toEqual(['paid 700 to acme', 'value of c']);
    expect(answer.approvals).toEqual([
      expect.objectContaining({ approval_id: id, status: 'approved', decided_by: 'dana' }),
    ]);
  });

  it("shows a tool's approval rule in the catalog", async () => {
    const tools = await client.listTools();
    expect(tools.find((t) => t.name === 'test_pay')?.approval).toEqual({
      when: [{ field: 'amount', above: 100 }],
    });
    expect(tools.find((t) => t.name === 'test_wipe')?.approval).toBe('always');
    expect(tools.find((t) => t.name === 'test_lookup')?.approval).toBeUndefined();
  });

  it('refuses a malformed decision or id before sending it', async () => {
    expect(() =>
      client.decideApproval('apr_0123456789abcdef01234567', { decision: 'maybe' as 'approve' }),
    ).toThrow(ToolqOptionError);
    expect(() => client.decideApproval('nope', { decision: 'approve' })).toThrow(/not an approval id/);
    await expect(client.createToolBatch([], { approvalTimeoutMs: 0 })).rejects.toThrow(/approvalTimeoutMs/);
  });
});
