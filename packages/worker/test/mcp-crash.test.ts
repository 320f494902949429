/**
 * MCP servers that misbehave: SIGKILLed mid-call, leaving grandchildren, never starting, crashing
 * inside an idempotent or an unsafe tool; and configurations the worker refuses to start with.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newActiveJobs } from '../../../test-support/active-jobs.ts';
import { letTimePass, waitFor } from '../../../test-support/wait-for.ts';
import type { WorkerProcess } from '../../../test-support/worker-process.ts';
import {
  childPids,
  commandOf,
  EVERYTHING,
  FIXTURE,
  isAlive,
  type McpEnv,
  NODE,
  startMcpEnv,
} from './mcp-harness.ts';

let env: McpEnv;
let worker: WorkerProcess;

const FAST_RESTART = { restart: { initialBackoffMs: 100, maxBackoffMs: 1_000 } };

beforeAll(async () => {
  env = await startMcpEnv();
  const config = env.writeConfig('mcp.json', {
    everything: { command: NODE, args: [EVERYTHING], toolq: FAST_RESTART },
    fx: {
      command: NODE,
      args: [FIXTURE],
      toolq: { ...FAST_RESTART, retry: { attempts: 5, backoffMs: 300 } },
    },
    broken: { command: '/nonexistent/mcp-server', toolq: FAST_RESTART },
    exits: { command: NODE, args: ['-e', 'process.stderr.write("no licence key\\n"); process.exit(3)'] },
    silent: {
      command: NODE,
      args: ['-e', 'setInterval(() => {}, 1000)'], // never answers the handshake
      toolq: { startupTimeoutMs: 1_000, restart: { initialBackoffMs: 5_000, maxBackoffMs: 5_000 } },
    },
  });
  worker = await env.startWorker(config, { metrics: true });
});

afterAll(async () => {
  await env?.stop();
});

const use = (id: string, name: string, input: unknown = {}) => ({ id, name, input });

function serverPid(script: string): number {
  const pid = childPids(worker.child.pid as number).find((p) => commandOf(p)?.includes(script));
  if (pid === undefined) throw new Error(`no server process running ${script}`);
  return pid;
}

async function metric(pattern: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${worker.metricsUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => pattern.test(l));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('a stdio server SIGKILLed mid-call', () => {
  it('answers its in-flight calls is_error at once, is restarted, and its tools come back', async () => {
    const before = serverPid(EVERYTHING);
    const running = await newActiveJobs(env.dispatcher.queueFor('default'));
    const pending = env.call([
      use('long', 'everything__trigger-long-running-operation', { duration: 30, steps: 3 }),
      use('echo', 'everything__echo', { message: 'before the crash' }),
    ]);
    // Killed mid-call: once the job runs on the worker, and then a moment for the worker to send
    // the call to the server (a step the test cannot see; left as a short sleep).
    await running();
    await letTimePass(500);
    const killedAt = Date.now();
    process.kill(before, 'SIGKILL');
    const { toolResults } = await pending;
    expect(Date.now() - killedAt).toBeLessThan(10_000); // at once, not at the 15 s deadline
    expect(toolResults[0]?.is_error).toBe(true);
    expect(toolResults[0]?.content).toMatch(
      /^Error: MCP server everything went away while the call ran \(the server process killed by SIGKILL\)/,
    );
    expect(toolResults[1]).toMatchObject({ content: 'Echo: before the crash' });

    const after = await waitFor('a new everything server', async () => {
      const pid = childPids(worker.child.pid as number).find((p) => commandOf(p)?.includes(EVERYTHING));
      return pid !== undefined && pid !== before ? pid : undefined;
    });
    expect(isAlive(before)).toBe(false);
    await waitFor('everything__echo back in the catalog', async () =>
      (await env.liveTools()).includes('everything__echo'),
    );
    const { toolResults: again } = await env.call([use('e', 'everything__echo', { message: 'back' })]);
    expect(again[0]).toMatchObject({ content: 'Echo: back' });
    expect(serverPid(EVERYTHING)).toBe(after);
    expect(
      await metric(/^toolq_mcp_server_failures_total\{server="everything",reason="exited"/),
    ).toBeGreaterThanOrEqual(1);
  });

  it('takes the processes it started with it: no orphans', async () => {
    const { toolResults } = await env.call([use('g', 'fx__spawn_grandchild')]);
    const grandchild = Number(toolResults[0]?.content);
    expect(isAlive(grandchild)).toBe(true);
    process.kill(serverPid(FIXTURE), 'SIGKILL');
    await waitFor('the grandchild to be stopped', async () => !isAlive(grandchild), 10_000);
    await waitFor('fx back', async () => (await env.liveTools()).includes('fx__pid'));
  });
});

describe('retries after a crash', () => {
  it('a tool annotated idempotent is retried under the retry policy and succeeds after the restart', async () => {
    const marker = join(env.dir, 'crashed-idempotent');
    const { toolResults, calls } = await env.call([use('r', 'fx__crash_once_idempotent', { marker })], {
      failurePolicy: 'retry',
    });
    expect(toolResults[0]).toEqual({ type: 'tool_result', tool_use_id: 'r', content: 'survived' });
    expect(calls[0]?.attempts).toBeGreaterThan(1);
  });

  it('a tool without the annotation is never retried', async () => {
    await waitFor('fx back', async () => (await env.liveTools()).includes('fx__crash_once_unsafe'));
    const marker = join(env.dir, 'crashed-unsafe');
    const { toolResults, calls } = await env.call([use('u', 'fx__crash_once_unsafe', { marker })], {
      failurePolicy: 'retry',
    });
    expect(toolResults[0]?.is_error).toBe(true);
    expect(toolResults[0]?.content).toMatch(/MCP server fx went away while the call ran/);
    expect(calls[0]?.attempts).toBe(1);
  });
});

describe('a server that never starts', () => {
  it('keeps the worker alive and its tools out of the catalog, with the reason in a metric', async () => {
    const live = await env.liveTools();
    expect(live.some((t) => t.startsWith('everything__'))).toBe(true);
    expect(live.some((t) => /^(broken|exits|silent)__/.test(t))).toBe(false);
    expect(
      await metric(/^toolq_mcp_server_failures_total\{server="broken",reason="spawn_failed"/),
    ).toBeGreaterThanOrEqual(1);
    expect(
      await metric(/^toolq_mcp_server_failures_total\{server="exits",reason="initialize_failed"/),
    ).toBeGreaterThanOrEqual(1);
    expect(await metric(/^toolq_mcp_server_state\{server="broken",state="connected"/)).toBe(0);
    expect(await metric(/^toolq_mcp_server_tools\{server="exits"/)).toBe(0);
    expect(
      await metric(/^toolq_mcp_server_failures_total\{server="silent",reason="initialize_failed"/),
    ).toBeGreaterThanOrEqual(1);
    // The silent server is stopped after its handshake timed out, and its retry is 5 s away: a
    // moment with none running comes (a server never stopped, or piling up, never gives one). Read
    // at once, a loaded machine could look during a retry's handshake.
    await waitFor(
      'no silent server running between its retries',
      () => childPids(worker.child.pid as number).every((p) => !commandOf(p)?.includes('setInterval')),
      30_000,
    );
    expect(worker.child.exitCode).toBeNull();
  });
});

describe('the worker stops', () => {
  it('stops every MCP server it started', async () => {
    await waitFor('fx back', async () => (await env.liveTools()).includes('fx__pid'));
    const servers = childPids(worker.child.pid as number);
    expect(servers.length).toBeGreaterThanOrEqual(2);
    expect(await worker.stop()).toBe(0);
    await waitFor('the servers to exit', async () => servers.every((pid) => !isAlive(pid)), 10_000);
  });
});

describe('the worker is SIGKILLed', () => {
  it('its MCP servers do not outlive it, though server-everything ignores stdin EOF', async () => {
    const config = env.writeConfig('killed.json', { everything: { command: NODE, args: [EVERYTHING] } });
    const killed = await env.startWorker(config);
    const server = childPids(killed.child.pid as number).find((p) => commandOf(p)?.includes(EVERYTHING));
    expect(server).toBeDefined();
    killed.child.kill('SIGKILL');
    await killed.exited;
    await waitFor('the orphaned server to be stopped', async () => !isAlive(server as number), 10_000);
  });
});

const WORKER_CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

/** Runs the worker CLI with a config expected to be refused; resolves with its exit code and stderr. */
function refusedStart(configPath: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(NODE, ['--import', 'tsx', WORKER_CLI, '--mcp', configPath, '--no-metrics'], {
    env: { ...process.env, REDIS_URL: env.redis.url, TOOLQ_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
}

describe('configurations the worker refuses', () => {
  it('a bad field stops the worker with a message naming the server and the field', async () => {
    const path = env.writeConfig('bad.json', { fs: { command: NODE, toolq: { maxInFlight: 0 } } });
    const { code, stderr } = await refusedStart(path);
    expect(code).toBe(2);
    expect(stderr).toMatch(
      /^toolq-worker: MCP config .*bad\.json: server "fs": toolq\.maxInFlight: Too small/,
    );
  });
});
