/**
 * A Streamable HTTP MCP server as fleet tools: server-everything in `streamableHttp` mode behind a
 * small recording proxy (to see the configured headers arrive), restarted under the worker to
 * drop its sessions, and stopped to be unreachable.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} is the config syntax under test.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test-support/free-port.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { EVERYTHING, type McpEnv, NODE, startMcpEnv } from './mcp-harness.ts';

let env: McpEnv;
let upstreamPort: number;
let upstream: ChildProcess | undefined;
let proxy: Server;
const seenAuthorization: (string | undefined)[] = [];
let metricsUrl: string;

async function failures(reason: string): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`toolq_mcp_server_failures_total{server="remote",reason="${reason}"`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

async function startUpstream(): Promise<void> {
  const child = spawn(NODE, [EVERYTHING, 'streamableHttp'], {
    env: { ...process.env, PORT: String(upstreamPort) },
    stdio: 'ignore',
  });
  upstream = child;
  await waitFor('server-everything to listen', async () => {
    if (child.exitCode !== null) throw new Error(`server-everything exited with ${child.exitCode}`);
    return fetch(`http://127.0.0.1:${upstreamPort}/mcp`).then(
      () => true,
      () => undefined,
    );
  });
}

async function stopUpstream(): Promise<void> {
  const child = upstream;
  upstream = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

beforeAll(async () => {
  env = await startMcpEnv();
  upstreamPort = await freePort();
  await startUpstream();
  // Forwards every request as it is and records the Authorization header it carried.
  proxy = createServer((req, res) => {
    seenAuthorization.push(req.headers.authorization);
    const forward = request(
      { host: '127.0.0.1', port: upstreamPort, path: req.url, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', () => {
      res.destroy(); // the upstream is down: the client sees the connection fail
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const config = env.writeConfig('mcp-http.json', {
    remote: {
      type: 'http',
      url: `http://127.0.0.1:${port}/mcp`,
      headers: { Authorization: 'Bearer ${TEST_MCP_TOKEN}' },
      // No pings here: the tests below want calls, not pings, to meet the dropped session.
      toolq: { restart: { initialBackoffMs: 100, maxBackoffMs: 500 }, pingIntervalMs: 0 },
    },
    pinged: {
      type: 'http',
      url: `http://127.0.0.1:${port}/mcp`,
      headers: { Authorization: 'Bearer ${TEST_MCP_TOKEN}' },
      toolq: { restart: { initialBackoffMs: 100, maxBackoffMs: 500 }, pingIntervalMs: 300, allow: ['echo'] },
    },
  });
  process.env.TEST_MCP_TOKEN = 'token-from-the-environment';
  metricsUrl = (await env.startWorker(config, { metrics: true })).metricsUrl as string;
});

afterAll(async () => {
  await env?.stop();
  await stopUpstream();
  proxy?.closeAllConnections();
  await new Promise((resolve) => proxy?.close(resolve));
});

const use = (id: string, name: string, input: unknown = {}) => ({ id, name, input });

describe('a Streamable HTTP MCP server', () => {
  it('serves its tools in order, with the configured headers taken from the environment', async () => {
    const { toolResults } = await env.call([
      use('a', 'remote__echo', { message: 'over http' }),
      use('b', 'remote__trigger-long-running-operation', { duration: 0.5, steps: 2 }),
      use('c', 'remote__get-sum', { a: 1, b: 41 }),
      use('d', 'remote__get-tiny-image'),
    ]);
    expect(toolResults.map((r) => r.tool_use_id)).toEqual(['a', 'b', 'c', 'd']);
    expect(toolResults[0]?.content).toBe('Echo: over http');
    expect(toolResults[1]?.content).toMatch(/completed/);
    expect(toolResults[2]?.content).toMatch(/42/);
    expect(toolResults[3]?.content).toContainEqual(expect.objectContaining({ type: 'image' }));
    expect(seenAuthorization.length).toBeGreaterThan(0);
    expect(seenAuthorization.every((h) => h === 'Bearer token-from-the-environment')).toBe(true);
  });

  it('answers a slow call at its deadline', async () => {
    const { toolResults } = await env.call(
      [use('slow', 'remote__trigger-long-running-operation', { duration: 20, steps: 2 })],
      { timeoutMs: 1_000 },
    );
    expect(toolResults[0]).toMatchObject({
      content: 'Tool remote__trigger-long-running-operation timed out after 1s',
      is_error: true,
    });
  });

  it('reconnects once when the server has dropped the session, and the calls still succeed', async () => {
    await stopUpstream();
    await startUpstream(); // a new process: it knows no session
    const { toolResults } = await env.call(
      ['a', 'b', 'c'].map((id) => use(id, 'remote__echo', { message: `after the restart ${id}` })),
    );
    // Three calls met the lost session at once: one reconnect, each sent again on the new session.
    expect(toolResults.map((r) => r.content)).toEqual([
      'Echo: after the restart a',
      'Echo: after the restart b',
      'Echo: after the restart c',
    ]);
    expect(await failures('session_lost')).toBe(1);
  });

  it('a server that goes away while nobody calls it leaves the catalog (ping) and comes back', async () => {
    await waitFor('pinged__echo in the catalog', async () =>
      (await env.liveTools()).includes('pinged__echo'),
    );
    await stopUpstream();
    await waitFor(
      'pinged__echo to leave the catalog',
      async () => !(await env.liveTools()).includes('pinged__echo'),
    );
    await startUpstream();
    await waitFor('pinged__echo back', async () => (await env.liveTools()).includes('pinged__echo'));
  });

  it('an unreachable server answers is_error, its tools leave the catalog, and come back with it', async () => {
    await stopUpstream();
    const { toolResults } = await env.call([use('a', 'remote__echo', { message: 'nobody home' })]);
    expect(toolResults[0]?.is_error).toBe(true);
    expect(toolResults[0]?.content).toMatch(/^Error: MCP server remote is unreachable/);
    expect(await failures('unreachable')).toBeGreaterThanOrEqual(1);
    await waitFor(
      'remote tools to leave the catalog',
      async () => !(await env.liveTools()).includes('remote__echo'),
    );
    await startUpstream();
    await waitFor('remote tools back', async () => (await env.liveTools()).includes('remote__echo'));
    const { toolResults: again } = await env.call([use('b', 'remote__echo', { message: 'back' })]);
    expect(again[0]?.content).toBe('Echo: back');
  });
});
