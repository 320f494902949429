/**
 * What a stdio MCP server writes to stdout besides JSON-RPC, and answers too large to read: a real
 * worker process (`--mcp`), real servers (the fixture, an SDK McpServer, one of them behind a
 * wrapper that logs JSON to stdout before each of its lines), a real Dispatcher on a private Redis.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { spawnWorkerProcess } from '../../../test-support/worker-process.ts';
import { answeredId } from '../src/mcp/stdio-lines.ts';
import { FIXTURE, type McpEnv, NODE, startMcpEnv } from './mcp-harness.ts';

const LOGGER = fileURLToPath(new URL('./mcp-stdout-logger.mjs', import.meta.url));

let env: McpEnv;
let worker: { child: ChildProcess; output(): string };

beforeAll(async () => {
  env = await startMcpEnv();
  const config = env.writeConfig('mcp.json', {
    noisy: { command: NODE, args: [LOGGER], toolq: { startupTimeoutMs: 5_000 } },
    big: { command: NODE, args: [FIXTURE], env: { FIXTURE_BIG: '1' }, toolq: { timeoutMs: 60_000 } },
  });
  worker = spawnWorkerProcess({ redisUrl: env.redis.url, mcp: config });
  await waitFor(
    'the big server to be connected',
    async () => (await env.liveTools()).includes('big__big') || undefined,
    100_000, // a spawned worker's start-up, as long as a ready line may take
  );
});

afterAll(async () => {
  if (worker) await stopChild(worker.child);
  await env?.stop();
});

const use = (id: string, name: string, input: unknown = {}) => ({ id, name, input });

describe('a server that logs JSON to stdout', () => {
  it('finishes its handshake and answers every call with its own answer, not the one before', async () => {
    await waitFor(
      'the noisy server to be connected',
      async () => (await env.liveTools()).includes('noisy__slow') || undefined,
      60_000,
    );
    for (const ms of [1, 2, 3]) {
      const result = await env.call([use(`toolu_${ms}`, 'noisy__slow', { ms })], { timeoutMs: 30_000 });
      expect(result.toolResults[0]).toEqual({
        type: 'tool_result',
        tool_use_id: `toolu_${ms}`,
        content: `slept ${ms} ms`,
      });
    }
    const output = worker.output();
    expect(output).toMatch(/MCP server wrote a line to stdout that is not JSON-RPC/);
    expect(output.match(/that is not JSON-RPC/g)).toHaveLength(1);
  });
});

describe('an answer over 10 MB', () => {
  it('fails its call at once with the reason; the server answers the next call', async () => {
    const started = Date.now();
    const result = await env.call([use('toolu_big', 'big__big', { bytes: 11 * 1024 * 1024 })]);
    // At once, not at the call's 60 s timeout (a bound between the two, for a loaded machine).
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.toolResults[0]?.is_error).toBe(true);
    expect(result.toolResults[0]?.content).toMatch(
      /over the 10\.0 MB a stdio message may be; it was dropped/,
    );
    // The worker's log comes through its stdout pipe, the result through Redis: either may be first.
    await waitFor('the worker to log the protocol error', () =>
      /"level":40.*MCP protocol error|MCP protocol error.*"level":40/.test(worker.output()),
    );

    const next = await env.call([use('toolu_after', 'big__slow', { ms: 1 })]);
    expect(next.toolResults[0]).toEqual({
      type: 'tool_result',
      tool_use_id: 'toolu_after',
      content: 'slept 1 ms',
    });
  });
});

describe('which request an over-long answer was for', () => {
  it('the id at its start (Python SDK order) or its end (TypeScript SDK order), if that request waits', () => {
    const waiting = new Set<string | number>([3, 'req-7']);
    expect(
      answeredId({ head: '{"jsonrpc":"2.0","id":3,"result":{"content":[', tail: '"}]}}' }, waiting),
    ).toBe(3);
    expect(
      answeredId(
        { head: '{"result":{"content":[{"id":3', tail: ']},"jsonrpc":"2.0","id":"req-7"}' },
        waiting,
      ),
    ).toBe('req-7');
    // An `id` inside the result names no waiting request: not taken for the answer's.
    expect(answeredId({ head: '{"result":{"id":99', tail: 'xxx' }, waiting)).toBeUndefined();
    expect(answeredId({ head: '{"result":{"id":99', tail: 'xxx' }, new Set([5]))).toBe(5);
  });
});
