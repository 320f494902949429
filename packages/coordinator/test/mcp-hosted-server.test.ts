/**
 * An MCP server hosted on a worker (the test fixture server over stdio), reached by an MCP client
 * through the coordinator's /mcp: its content comes through unchanged, audio and binary resources
 * included (which the Messages API mapping names in a short text instead), and its isError too.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const FIXTURE = fileURLToPath(new URL('../../worker/test/mcp-fixture-server.mjs', import.meta.url));
const PNG_1PX =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

let redis: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let client: Client;

beforeAll(async () => {
  redis = await startRedisServer();
  const config = join(mkdtempSync(join(tmpdir(), 'toolq-mcp-hosted-')), 'mcp.json');
  writeFileSync(
    config,
    JSON.stringify({ mcpServers: { fx: { command: process.execPath, args: [FIXTURE] } } }),
  );
  worker = await startWorkerProcess({ redisUrl: redis.url, mcp: config });
  coordinator = await startCoordinatorProcess({ REDIS_URL: redis.url });
  client = new Client({ name: 'toolq-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', coordinator.url)));
}, 120_000);

afterAll(async () => {
  await client?.close().catch(() => undefined);
  if (coordinator) await stopChild(coordinator.child);
  await worker?.stop();
  await redis?.stop();
});

describe('an MCP server on a worker, through /mcp', () => {
  it('passes every kind of content through unchanged: audio and binary resources too', async () => {
    await waitFor('the fixture tools in tools/list', async () =>
      (await client.listTools(undefined, { cacheMode: 'refresh' })).tools.some(
        (t) => t.name === 'fx__content_kinds',
      ),
    );
    const result = await client.callTool({ name: 'fx__content_kinds', arguments: {} });
    expect(result.isError).toBeFalsy();
    expect(result.content).toEqual([
      { type: 'text', text: 'plain text' },
      { type: 'image', data: PNG_1PX, mimeType: 'image/png' },
      { type: 'image', data: 'PHN2Zy8+', mimeType: 'image/svg+xml' },
      { type: 'audio', data: 'UklGRg==', mimeType: 'audio/wav' },
      {
        type: 'resource',
        resource: { uri: 'file:///notes.txt', mimeType: 'text/plain', text: 'resource text' },
      },
      {
        type: 'resource',
        resource: { uri: 'file:///report.pdf', mimeType: 'application/pdf', blob: 'JVBERi0xLjQ=' },
      },
      { type: 'resource_link', uri: 'file:///big.csv', name: 'big.csv', mimeType: 'text/csv' },
    ]);
  });

  it('passes structured content and isError results through', async () => {
    const structured = await client.callTool({ name: 'fx__structured_only', arguments: {} });
    expect(structured.structuredContent).toEqual({ answer: 42 });
    const failed = await client.callTool({ name: 'fx__fail', arguments: { message: 'disk full' } });
    expect(failed).toMatchObject({ isError: true, content: [{ type: 'text', text: 'disk full' }] });
  });
});
