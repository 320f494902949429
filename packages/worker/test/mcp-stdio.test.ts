/**
 * MCP servers over stdio as fleet tools, end to end: real servers (server-everything and the
 * fixture server, an SDK McpServer) started by a real worker process (`--mcp`), called through a
 * real Dispatcher on a private Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxOverlap, waitFor } from '../../../test-support/wait-for.ts';
import type { WorkerProcess } from '../../../test-support/worker-process.ts';
import { EVERYTHING, FIXTURE, type McpEnv, NODE, startMcpEnv } from './mcp-harness.ts';

let env: McpEnv;
let worker: WorkerProcess;

beforeAll(async () => {
  env = await startMcpEnv();
  const config = env.writeConfig('mcp.json', {
    everything: { command: NODE, args: [EVERYTHING] },
    fx: { command: NODE, args: [FIXTURE], toolq: { timeoutMs: 20_000 } },
    narrow: { command: NODE, args: [FIXTURE], toolq: { maxInFlight: 2, allow: ['slow', 'stats'] } },
  });
  worker = await env.startWorker(config, { metrics: true });
});

afterAll(async () => {
  await env?.stop();
});

const use = (id: string, name: string, input: unknown = {}) => ({ id, name, input });

describe('MCP tools in the catalog', () => {
  it('are <server>__<tool> with the server description and inputSchema; allow lists hold', async () => {
    const tools = env.dispatcher.catalog.list();
    const sum = tools.find((t) => t.name === 'everything__get-sum');
    expect(sum?.liveWorkers).toBe(1);
    expect(sum?.description).toMatch(/sum/i);
    expect(sum?.input_schema).toMatchObject({
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
    });
    expect(sum?.input_schema).not.toHaveProperty('$schema');
    expect(tools.filter((t) => t.name.startsWith('narrow__')).map((t) => t.name)).toEqual([
      'narrow__slow',
      'narrow__stats',
    ]);
    // Only tools annotated idempotent or read-only declare retries.
    expect(tools.find((t) => t.name === 'everything__trigger-long-running-operation')?.retry).toEqual({
      attempts: 3,
      backoffMs: 200,
    });
    expect(tools.find((t) => t.name === 'fx__fail')?.retry).toBeUndefined();
  });
});

describe('MCP calls over stdio', () => {
  it('answer in order, one tool_result per tool_use, text and images as blocks', async () => {
    const result = await env.call([
      use('toolu_1', 'everything__echo', { message: 'first' }),
      use('toolu_2', 'everything__get-sum', { a: 2, b: 3 }),
      use('toolu_3', 'fx__slow', { ms: 300 }),
      use('toolu_4', 'everything__get-tiny-image'),
      use('toolu_5', 'everything__echo', { message: 'last' }),
    ]);
    expect(result.toolResults.map((r) => r.tool_use_id)).toEqual([
      'toolu_1',
      'toolu_2',
      'toolu_3',
      'toolu_4',
      'toolu_5',
    ]);
    expect(result.toolResults[0]).toEqual({
      type: 'tool_result',
      tool_use_id: 'toolu_1',
      content: 'Echo: first',
    });
    expect(result.toolResults[1]?.content).toMatch(/5/);
    expect(result.toolResults[2]?.content).toBe('slept 300 ms');
    const image = result.toolResults[3]?.content as { type: string; source?: { media_type: string } }[];
    expect(image.map((b) => b.type)).toContain('image');
    expect(image.find((b) => b.type === 'image')?.source?.media_type).toBe('image/png');
    expect(result.toolResults[4]?.content).toBe('Echo: last');
    expect(result.toolResults.some((r) => r.is_error)).toBe(false);
  });

  it('map text, image, embedded resources and what the API cannot take', async () => {
    const { toolResults } = await env.call([use('a', 'fx__content_kinds'), use('b', 'fx__structured_only')]);
    expect(toolResults[0]?.content).toEqual([
      { type: 'text', text: 'plain text' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: expect.any(String) } },
      { type: 'text', text: expect.stringMatching(/^\[toolq dropped an image of type image\/svg\+xml/) },
      { type: 'text', text: expect.stringMatching(/^\[toolq dropped audio of type audio\/wav/) },
      { type: 'text', text: 'Resource <file:///notes.txt>:\nresource text' },
      {
        type: 'text',
        text: expect.stringMatching(
          /dropped the binary resource <file:\/\/\/report\.pdf> of type application\/pdf/,
        ),
      },
      { type: 'text', text: 'Resource link: big.csv <file:///big.csv> (text/csv)' },
    ]);
    expect(toolResults[1]).toEqual({ type: 'tool_result', tool_use_id: 'b', content: '{"answer":42}' });
  });

  it('isError results are is_error with the server message; bad input never reaches the server', async () => {
    const { toolResults } = await env.call([
      use('a', 'fx__fail', { message: 'ENOENT: no such file' }),
      use('b', 'everything__get-sum', { a: 'two' }),
      use('c', 'everything__echo', { message: 'ok', extra: 1 }),
      use('d', 'everything__no-such-tool'),
    ]);
    expect(toolResults[0]).toEqual({
      type: 'tool_result',
      tool_use_id: 'a',
      content: 'Error: ENOENT: no such file',
      is_error: true,
    });
    expect(toolResults[1]?.is_error).toBe(true);
    expect(toolResults[1]?.content).toBe(
      'Invalid input for everything__get-sum: b: required; a: must be number',
    );
    expect(toolResults[2]?.is_error).toBeUndefined(); // the server's schema allows extra properties
    expect(toolResults[3]).toMatchObject({
      content: 'Unknown tool: everything__no-such-tool',
      is_error: true,
    });
  });

  it('a slow tool answers "timed out" at its deadline and the server is sent notifications/cancelled', async () => {
    const started = Date.now();
    const { toolResults } = await env.call(
      [
        use('slow', 'fx__slow', { ms: 20_000 }),
        use('long', 'everything__trigger-long-running-operation', { duration: 20, steps: 4 }),
      ],
      { timeoutMs: 1_000 },
    );
    const elapsed = Date.now() - started;
    expect(toolResults[0]).toMatchObject({ content: 'Tool fx__slow timed out after 1s', is_error: true });
    expect(toolResults[1]).toMatchObject({
      content: 'Tool everything__trigger-long-running-operation timed out after 1s',
      is_error: true,
    });
    // At the 1 s deadline, not after the 20 s calls: a bound halfway, for a loaded machine.
    expect(elapsed).toBeLessThan(11_000);
    // The fixture records the cancellation it received for the request.
    const stats = await waitFor('the cancellation to reach the server', async () => {
      const { toolResults: r } = await env.call([use('s', 'fx__stats')]);
      const parsed = JSON.parse(r[0]?.content as string) as { cancelled: string[] };
      return parsed.cancelled.length > 0 ? parsed : undefined;
    });
    expect(stats.cancelled[0]).toMatch(/deadline/);
  });

  it('eight slow calls in one batch run at once', async () => {
    const started = Date.now();
    const { toolResults, calls } = await env.call(
      Array.from({ length: 8 }, (_, i) =>
        use(`t${i}`, 'everything__trigger-long-running-operation', { duration: 1.5, steps: 1 }),
      ),
    );
    const elapsed = Date.now() - started;
    expect(toolResults.every((r) => !r.is_error && /completed/.test(String(r.content)))).toBe(true);
    // All eight ran at the same time (the worker's recorded starts and finishes, in ms after the
    // batch was enqueued), not one after another.
    const runs = calls.map((c) => {
      const start = c.queueWaitMs ?? Number.NaN;
      return { start, end: start + (c.runMs ?? Number.NaN) };
    });
    expect(maxOverlap(runs)).toBe(8);
    console.info(`8 x 1.5 s MCP calls on one server connection: ${elapsed} ms`);
  });

  it('a server with maxInFlight 2 never has more than two calls in flight; the rest wait their turn', async () => {
    const { toolResults } = await env.call(
      Array.from({ length: 6 }, (_, i) => use(`n${i}`, 'narrow__slow', { ms: 300 })),
    );
    expect(toolResults.every((r) => r.content === 'slept 300 ms')).toBe(true);
    const { toolResults: stats } = await env.call([use('s', 'narrow__stats')]);
    expect(JSON.parse(stats[0]?.content as string).maxActive).toBe(2);
  });

  it('list_changed: a tool the server adds appears in the catalog and runs; a removed one goes', async () => {
    await env.call([use('add', 'fx__add_tool', { name: 'late_tool' })]);
    await waitFor('fx__late_tool in the catalog', async () =>
      (await env.liveTools()).includes('fx__late_tool'),
    );
    const { toolResults } = await env.call([use('late', 'fx__late_tool')]);
    expect(toolResults[0]?.content).toBe('hello from late_tool');
    await env.call([use('rm', 'fx__remove_tool', { name: 'late_tool' })]);
    await waitFor('fx__late_tool gone', async () => !(await env.liveTools()).includes('fx__late_tool'));
  });

  it('sampling, elicitation and roots requests from a server are refused, and the call answers is_error at once', async () => {
    const started = Date.now();
    const { toolResults } = await env.call(
      ['sampling', 'elicitation', 'roots'].map((kind) => use(kind, 'fx__ask_client', { kind })),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const r of toolResults) {
      expect(r.is_error).toBe(true);
      expect(r.content).toMatch(/^Error: /);
    }
    console.info(`server-to-client requests: ${toolResults.map((r) => r.content).join(' | ')}`);
  });

  it('per-server state and tool counts are metrics on the worker', async () => {
    const metrics = await (await fetch(`${worker.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /toolq_mcp_server_state\{server="everything",state="connected",component="worker"\} 1/,
    );
    expect(metrics).toMatch(/toolq_mcp_server_tools\{server="narrow",component="worker"\} 2/);
    expect(metrics).toMatch(
      /toolq_worker_jobs_total\{tool="everything__echo",pool="default",outcome="ok",component="worker"\} \d+/,
    );
  });
});
