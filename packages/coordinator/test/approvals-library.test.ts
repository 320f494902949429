/**
 * Approvals in embedded use: the Dispatcher and the agent loop take an approval handler. A real
 * Redis, an in-process worker serving the approval test tools, the scripted model through the
 * real SDK. The handler sees the exact call (tool, input, app), its verdict is recorded like a
 * person's, and a call it leaves undecided is decided through the Dispatcher's approvals.
 */
import Anthropic from '@anthropic-ai/sdk';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { describe, expect, it } from 'vitest';
import approvalTools from '../../../test-support/approval-tools.ts';
import { useInProcessFleet } from '../../../test-support/in-process-fleet.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { runAgent } from '../src/agent/index.ts';
import type { ApprovalRequest } from '../src/index.ts';

const fleet = useInProcessFleet({ workers: [{ tools: approvalTools }] });

describe('an approval handler', () => {
  it('on dispatch(): decides each held call from its request; the others run without asking', async () => {
    const asked: ApprovalRequest[] = [];
    const result = await fleet.dispatcher.dispatch(
      [
        { id: 'p1', name: 'test_pay', input: { amount: 250, to: 'acme' } },
        { id: 'w1', name: 'test_wipe', input: { path: '/var/lib' } },
        { id: 'l1', name: 'test_lookup', input: { key: 'k' } },
      ],
      {
        app: 'shop',
        approval: {
          handler: (request) => {
            asked.push(request);
            return request.tool === 'test_pay'
              ? { decision: 'approve', by: 'policy-engine' }
              : { decision: 'deny', reason: 'never from a batch' };
          },
        },
      },
    );
    expect(asked.map((r) => [r.tool, r.toolUseId, r.app, r.input])).toEqual([
      ['test_pay', 'p1', 'shop', { amount: 250, to: 'acme' }],
      ['test_wipe', 'w1', 'shop', { path: '/var/lib' }],
    ]);
    expect(result.toolResults.map((r) => [r.tool_use_id, r.is_error ?? false])).toEqual([
      ['p1', false],
      ['w1', true],
      ['l1', false],
    ]);
    expect(result.toolResults[0]?.content).toBe('paid 250 to acme');
    expect(result.toolResults[1]?.content).toMatch(
      /handler\) denied this test_wipe call: never from a batch/,
    );
    expect(result.approvals?.map((a) => [a.toolUseId, a.status, a.decidedBy])).toEqual([
      ['p1', 'approved', 'policy-engine'],
      ['w1', 'denied', 'handler'],
    ]);
  });

  it('that answers nothing leaves the call pending: listed for its app only, decided through dispatcher.approvals', async () => {
    const answer = fleet.dispatcher.dispatch([{ id: 'w2', name: 'test_wipe', input: { path: '/tmp/x' } }], {
      app: 'ops',
      approval: { handler: () => undefined },
    });
    const [pending] = await waitFor('the approval to be listed', async () => {
      const list = await fleet.dispatcher.approvals.list('ops');
      return list.length > 0 ? list : undefined;
    });
    expect(await fleet.dispatcher.approvals.list('shop')).toEqual([]);
    await expect(
      fleet.dispatcher.approvals.decide('shop', pending?.approvalId ?? '', { decision: 'approve' }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await fleet.dispatcher.approvals.decide('ops', pending?.approvalId ?? '', {
      decision: 'approve',
      by: 'carol',
    });
    await expect(
      fleet.dispatcher.approvals.decide('ops', pending?.approvalId ?? '', { decision: 'deny' }),
    ).rejects.toMatchObject({ code: 'APPROVAL_DECIDED' });
    expect((await answer).toolResults[0]?.content).toBe('wiped /tmp/x');
  });

  it('refuses a malformed approval option, naming it', async () => {
    await expect(
      fleet.dispatcher.dispatch([{ id: 'x', name: 'test_lookup', input: { key: 'x' } }], {
        approval: { timeoutMs: -1 },
      }),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/approval\.timeoutMs/) });
  });

  it('on runAgent(): the model reads the denial and the reason; the approved call ran', async () => {
    const model = await startScriptedModel(
      toolTurnsScript([
        {
          calls: [
            { name: 'test_pay', input: { amount: 5_000, to: 'mallory' } },
            { name: 'test_pay', input: { amount: 120, to: 'bob' } },
          ],
        },
      ]),
    );
    try {
      const approvals: string[] = [];
      const result = await runAgent({
        dispatcher: fleet.dispatcher,
        client: new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 }),
        prompt: 'Pay the invoices.',
        tools: ['test_pay'],
        logger: testLogger(),
        approval: {
          handler: ({ input }) => {
            const { amount, to } = input as { amount: number; to: string };
            approvals.push(`${to} ${amount}`);
            return amount > 1_000
              ? { decision: 'deny', reason: 'over the 1000 limit', by: 'limits' }
              : { decision: 'approve', by: 'limits' };
          },
        },
      });
      expect(result.status).toBe('end_turn');
      expect(approvals.sort()).toEqual(['bob 120', 'mallory 5000']);
      const sent = JSON.stringify(
        (model.requests[1]?.body as { messages?: unknown[] } | undefined)?.messages?.[2],
      );
      expect(sent).toContain('denied this test_pay call: over the 1000 limit');
      expect(sent).toContain('paid 120 to bob');
      expect(result.calls.map((c) => [c.name, c.isError])).toEqual([
        ['test_pay', true],
        ['test_pay', false],
      ]);
    } finally {
      await model.close();
    }
  });
});
