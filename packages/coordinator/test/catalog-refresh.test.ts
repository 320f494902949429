/**
 * What a catalog refresh costs Redis with a 10,000-tool worker (a large MCP catalog): the first
 * read takes the specs, later ones only the heartbeats, until the worker's tools change. Real
 * Redis; bytes are Redis's own count of what it sent (INFO total_net_output_bytes).
 */
import {
  createKeys,
  createRedis,
  type PublishedToolSet,
  publishPoolMode,
  publishWorker,
  type Redis,
  type ToolSpec,
  type WorkerInfo,
} from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { Catalog } from '../src/catalog.ts';

let server: RedisServer;
let redis: Redis;
let probe: Redis;
const keys = createKeys('toolq');

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedis(server.url);
  probe = createRedis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  probe?.disconnect();
  await server?.stop();
});

/** About the size of an MCP tool's spec: a description and a small input schema (~330 bytes). */
const spec = (i: number): ToolSpec => ({
  name: `mcp__tool_${i}`,
  description: `Tool number ${i} of a large MCP server: looks things up and answers with what it found there.`,
  input_schema: {
    type: 'object',
    properties: { query: { type: 'string', description: 'What to look for' }, limit: { type: 'integer' } },
    required: ['query'],
  },
  timeoutMs: 30_000,
});

const worker = (tools: ToolSpec[]): WorkerInfo => ({
  id: 'big-worker',
  pool: 'mcp',
  host: 'h',
  pid: 1,
  concurrency: 8,
  startedAt: Date.now(),
  heartbeatAt: Date.now(),
  tools,
});

async function sentBytes(): Promise<number> {
  const info = await probe.info('stats');
  return Number(/total_net_output_bytes:(\d+)/.exec(info)?.[1] ?? Number.NaN);
}

/** Bytes Redis sent while `work` ran, less what the INFO calls that measure it cost. */
async function bytesOf(work: () => Promise<void>): Promise<number> {
  const a = await sentBytes();
  const b = await sentBytes();
  await work();
  const c = await sentBytes();
  return c - b - (b - a);
}

describe('catalog refresh with a 10,000-tool worker', () => {
  it('reads the specs once, then only the heartbeats, and again when the tools change', async () => {
    const tools = Array.from({ length: 10_000 }, (_, i) => spec(i));
    const published: PublishedToolSet = {};
    await publishWorker(redis, keys, worker(tools), published);
    const catalog = new Catalog({ redis, keys, logger: testLogger() });

    const first = await bytesOf(() => catalog.refresh());
    expect(catalog.lookupCached('mcp__tool_9999')).toMatchObject({ kind: 'ok', pool: 'mcp', workers: 1 });

    await publishWorker(redis, keys, worker(tools), published); // the next heartbeat
    const second = await bytesOf(() => catalog.refresh());
    expect(catalog.lookupCached('mcp__tool_9999')).toMatchObject({ kind: 'ok', pool: 'mcp', workers: 1 });
    // A coordinator refreshes once a second: these are its bytes a second.
    console.info(`catalog refresh, 10,000 tools: first ${first} B, then ${second} B a refresh`);
    expect(first).toBeGreaterThan(3_000_000);
    expect(second).toBeLessThan(2_000);

    await publishWorker(redis, keys, worker([...tools, spec(10_000)]), published);
    const changed = await bytesOf(() => catalog.refresh());
    expect(changed).toBeGreaterThan(3_000_000);
    expect(catalog.lookupCached('mcp__tool_10000')).toMatchObject({ kind: 'ok', pool: 'mcp' });
  });

  it('reads a 10,000-tool waiting pool (scale from zero) once, then again only when it changes', async () => {
    const wp = createKeys('wp');
    const tools = Array.from({ length: 10_000 }, (_, i) => spec(i));
    const self = { id: 'zero-worker', startedAt: Date.now() };
    await publishPoolMode(redis, wp, 'zero', true, tools, self);
    const catalog = new Catalog({ redis, keys: wp, logger: testLogger() });
    const first = await bytesOf(() => catalog.refresh());
    expect(catalog.lookupCached('mcp__tool_9999')).toMatchObject({ kind: 'ok', pool: 'zero', workers: 0 });
    const second = await bytesOf(() => catalog.refresh());
    expect(catalog.lookupCached('mcp__tool_9999')).toMatchObject({ kind: 'ok', pool: 'zero', workers: 0 });
    console.info(`catalog refresh, 10,000-tool waiting pool: first ${first} B, then ${second} B a refresh`);
    expect(first).toBeGreaterThan(3_000_000);
    expect(second).toBeLessThan(2_000);
    await publishPoolMode(redis, wp, 'zero', true, [...tools, spec(10_000)], self);
    await catalog.refresh();
    expect(catalog.lookupCached('mcp__tool_10000')).toMatchObject({ kind: 'ok', pool: 'zero', workers: 0 });
  });

  it('reads a worker entry written with its tools inline (older workers, hand-written ones)', async () => {
    await redis.hset(
      keys.workers(),
      'inline-worker',
      JSON.stringify({ ...worker([spec(1)]), id: 'inline-worker', pool: 'inline', tools: [spec(20_001)] }),
    );
    const catalog = new Catalog({ redis, keys, logger: testLogger() });
    await catalog.refresh();
    expect(catalog.lookupCached('mcp__tool_20001')).toMatchObject({ kind: 'ok', pool: 'inline', workers: 1 });
  });
});
