/**
 * The check every topology test makes of a real coordinator CLI: once /readyz says ready, a batch
 * mixing a result, a tool's error, an unknown tool, a timeout and content blocks is answered in
 * order, each call as it should be. Needs workers serving `diagnostics` and test-tools.ts.
 */
import { expect } from 'vitest';
import { waitFor } from './wait-for.ts';

export async function expectMixedBatchAnswered(coordinatorUrl: string): Promise<void> {
  await waitFor('/readyz to say ready', async () => (await fetch(`${coordinatorUrl}/readyz`)).ok, 10_000);
  const res = await fetch(`${coordinatorUrl}/v1/tool-batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      timeout_ms: 1_500,
      tool_uses: [
        { id: 'a', name: 'diag_echo', input: { value: 'hello' } },
        { id: 'b', name: 'diag_fail', input: { message: 'boom' } },
        { id: 'c', name: 'test_counted', input: { ms: 5 } },
        { id: 'd', name: 'no_such_tool', input: {} },
        { id: 'e', name: 'diag_sleep', input: { ms: 10_000 } },
        { id: 'f', name: 'test_blocks', input: {} },
      ],
    }),
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as {
    tool_results: { tool_use_id: string; content: unknown; is_error?: boolean }[];
  };
  expect(body.tool_results.map((r) => r.tool_use_id)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  const [a, b, c, d, e, f] = body.tool_results;
  expect(a).toMatchObject({ content: 'hello' });
  expect(a?.is_error).toBeUndefined();
  expect(b).toMatchObject({ content: 'Error: boom', is_error: true });
  expect(c?.content).toMatch(/^\{"run":\d+\}$/);
  expect(d).toMatchObject({ content: 'Unknown tool: no_such_tool', is_error: true });
  expect(e).toMatchObject({ content: 'Tool diag_sleep timed out after 1.5s', is_error: true });
  expect(f?.content).toEqual([
    { type: 'text', text: 'hello' },
    { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
  ]);
}
