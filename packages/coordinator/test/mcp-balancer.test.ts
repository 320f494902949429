/**
 * The fleet as an MCP server behind a plain round-robin balancer over two coordinators (no sticky
 * sessions): the official SDK's client, with an app token, lists the tools, runs 8 calls at once,
 * cancels one (the call stops on its worker), and sees a new worker's tool appear.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { type RoundRobinProxy, startRoundRobinProxy } from '../../../test-support/round-robin-proxy.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/mcp-tools.ts', import.meta.url));
const TOKEN = 'mcp-balancer-token-0123456789';

let redis: RedisServer;
let proxy: RoundRobinProxy;
const coordinators: Awaited<ReturnType<typeof startCoordinatorProcess>>[] = [];
const workers: WorkerProcess[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  workers.push(await startWorkerProcess({ redisUrl: redis.url, tools: TOOLS, concurrency: 16 }));
  const env = { REDIS_URL: redis.url, TOOLQ_API_TOKENS: `mcpapp:${TOKEN}` };
  coordinators.push(...(await Promise.all([startCoordinatorProcess(env), startCoordinatorProcess(env)])));
  proxy = await startRoundRobinProxy(coordinators.map((c) => c.url));
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await proxy?.close();
  await Promise.all(coordinators.map((c) => stopChild(c.child)));
  await Promise.all(workers.map((w) => w.stop()));
  await redis?.stop();
});

async function connect(options: { onToolsChanged?: () => void } = {}): Promise<Client> {
  const client = new Client(
    { name: 'toolq-test', version: '1.0.0' },
    options.onToolsChanged
      ? { listChanged: { tools: { autoRefresh: false, onChanged: () => options.onToolsChanged?.() } } }
      : {},
  );
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', proxy.url), {
    requestInit: { headers: { authorization: `Bearer ${TOKEN}` } },
  });
  await client.connect(transport);
  clients.push(client);
  return client;
}

describe('/mcp behind a round-robin balancer of two coordinators', () => {
  it('refuses a client without the token (401)', async () => {
    const response = await fetch(new URL('/mcp', proxy.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('lists the fleet tools with their schemas and annotations, through both coordinators', async () => {
    const client = await connect();
    const before = [...proxy.counts];
    const { tools } = await client.listTools();
    await client.ping();
    const names = tools.map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining(['mcp_sleep', 'test_image_content', 'json_schema_2020_12_tool']),
    );
    const image = tools.find((t) => t.name === 'test_image_content');
    expect(image?.annotations).toEqual({ readOnlyHint: true, title: 'Tiny image' });
    const schema = tools.find((t) => t.name === 'json_schema_2020_12_tool')?.inputSchema;
    expect(schema).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      additionalProperties: false,
    });
    // The session was opened on one coordinator and used on the other.
    expect(proxy.counts.every((count, i) => count > (before[i] ?? 0))).toBe(true);
  });

  it('runs 8 one-second calls at once: they overlap on the fleet', async () => {
    const client = await connect();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => client.callTool({ name: 'mcp_sleep', arguments: { ms: 1_000 } })),
    );
    const spans = results.map((result) => {
      expect(result.isError).toBeFalsy();
      const [block] = result.content as { type: string; text: string }[];
      return JSON.parse(block?.text ?? '{}') as { startedAt: number; endedAt: number };
    });
    // All ran at the same time: the last to start started before the first to end ended.
    const lastStart = Math.max(...spans.map((s) => s.startedAt));
    const firstEnd = Math.min(...spans.map((s) => s.endedAt));
    expect(lastStart).toBeLessThan(firstEnd);
  });

  it('passes progress on and aborts a cancelled call on its worker', async () => {
    const client = await connect();
    const abortFile = join(mkdtempSync(join(tmpdir(), 'toolq-mcp-cancel-')), 'aborted');
    const controller = new AbortController();
    let progressSeen = 0;
    const call = client.callTool(
      { name: 'mcp_sleep', arguments: { ms: 30_000, abort_file: abortFile } },
      {
        signal: controller.signal,
        onprogress: () => {
          progressSeen++;
        },
      },
    );
    call.catch(() => undefined);
    // Progress means the tool runs on its worker; then the client cancels.
    await waitFor('the call to report progress', () => progressSeen > 0);
    controller.abort('the user changed their mind');
    await expect(call).rejects.toThrow();
    await waitFor('the worker to abort the call', () => existsSync(abortFile));
    expect(readFileSync(abortFile, 'utf8')).toContain('cancellation');
  });

  it('a cancel that reaches another coordinator before its call does still cancels the call', async () => {
    const [a, b] = coordinators;
    if (!a || !b) throw new Error('two coordinators expected');
    const post = (url: string, body: unknown, session?: string) =>
      fetch(new URL('/mcp', url), {
        method: 'POST',
        headers: {
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-06-18',
          ...(session ? { 'mcp-session-id': session } : {}),
        },
        body: JSON.stringify(body),
      });
    const init = await post(a.url, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    const session = init.headers.get('mcp-session-id') ?? '';
    await init.text();
    const cancel = await post(
      b.url,
      {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 7, reason: 'changed my mind' },
      },
      session,
    );
    expect(cancel.status).toBe(202);
    const call = await post(
      a.url,
      {
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'mcp_sleep', arguments: { ms: 30_000 } },
      },
      session,
    );
    const text = await call.text();
    expect(text).toContain('"isError":true');
    expect(text).toContain('changed my mind');
  });

  it('shows a new worker tool in tools/list, and tells the client the list changed', async () => {
    let changed = 0;
    const client = await connect({ onToolsChanged: () => changed++ });
    const initial = (await client.listTools()).tools.map((t) => t.name);
    expect(initial).not.toContain('diag_echo');
    workers.push(await startWorkerProcess({ redisUrl: redis.url, tools: 'diagnostics' }));
    await waitFor('tools/list_changed', () => changed > 0);
    const names = await waitFor('the new tool in tools/list', async () => {
      const { tools } = await client.listTools(undefined, { cacheMode: 'refresh' });
      const list = tools.map((t) => t.name);
      return list.length > initial.length ? list : undefined;
    });
    expect(names).toContain('diag_echo');
  });
});
