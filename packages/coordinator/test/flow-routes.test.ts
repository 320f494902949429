/**
 * Issue 19, operators: `GET/PUT /v1/tools/:name/limits`, `POST .../pause|resume` with an operator
 * token (an app token gets 403; bad input a 400 naming the field), applied fleet-wide at once,
 * kept across a coordinator restart, and seen in `GET /v1/tools`. A real coordinator and worker.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { readFlowEvents } from '../../../test-support/flow-tools.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { maxOverlap, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const TOOLS = fileURLToPath(new URL('../../../test-support/flow-tools.ts', import.meta.url));
const REPORT_CLI = fileURLToPath(new URL('../src/report-cli.ts', import.meta.url));
const APP = 'alpha-token-0123456789abcdef';
const OPS = 'ops-token-0123456789abcdefgh';
let server: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
const env = () => ({
  REDIS_URL: server.url,
  TOOLQ_API_TOKENS: `alpha:${APP}`,
  TOOLQ_OPERATOR_TOKENS: `ops:${OPS}`,
});

async function call(method: string, path: string, token: string, body?: unknown) {
  const res = await fetch(`${coordinator.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const batch = async (
  tool: string,
  n: number,
  input: Record<string, unknown>,
  prefix: string,
  timeoutMs: number,
) => {
  const tool_uses = Array.from({ length: n }, (_, i) => ({
    type: 'tool_use',
    id: `${prefix}-${i}`,
    name: tool,
    input: { ...input, tag: `${prefix}-${i}` },
  }));
  const res = await call('POST', '/v1/tool-batches', APP, { tool_uses, timeout_ms: timeoutMs });
  expect(res.status).toBe(200);
  return res.body as {
    tool_results: { content: string; is_error?: true }[];
    stats: { calls: { outcome: string }[] };
  };
};

beforeAll(async () => {
  server = await startRedisServer();
  worker = await startWorkerProcess({ redisUrl: server.url, tools: TOOLS, concurrency: 8 });
  coordinator = await startCoordinatorProcess(env());
}, 60_000);

afterAll(async () => {
  coordinator?.child.kill('SIGKILL');
  await worker?.stop('SIGKILL');
  await server?.stop();
});

describe('operator routes of flow control', () => {
  it('need an operator token: an app token gets 403', async () => {
    for (const [method, path] of [
      ['GET', '/v1/tools/capped/limits'],
      ['PUT', '/v1/tools/capped/limits'],
      ['POST', '/v1/tools/capped/pause'],
      ['POST', '/v1/tools/capped/resume'],
    ] as const) {
      const res = await call(method, path, APP, method === 'PUT' ? { concurrency: 1 } : undefined);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect((res.body.error as { code: string }).code).toBe('FORBIDDEN');
    }
  });

  it("answer the definition's limits, and 4xx naming the field for bad input", async () => {
    const got = await call('GET', '/v1/tools/capped/limits', OPS);
    expect(got).toEqual({
      status: 200,
      body: { tool: 'capped', concurrency: 3, rate_limit: null, paused: false },
    });
    const bad = async (body: unknown, field: RegExp) => {
      const res = await call('PUT', '/v1/tools/capped/limits', OPS, body);
      expect(res.status).toBe(400);
      expect((res.body.error as { message: string }).message).toMatch(field);
    };
    await bad({ concurrency: 0 }, /concurrency: must be at least 1/);
    await bad({ rate_limit: { max: 5 } }, /rate_limit\.per_ms: a rate limit needs its window/);
    await bad({ concurrency: 2, burst: 3 }, /burst/);
    await bad({}, /give concurrency, rate_limit or both/);
    const unknown = await call('PUT', '/v1/tools/no_such_tool/limits', OPS, { concurrency: 1 });
    expect(unknown.status).toBe(404);
    expect((unknown.body.error as { message: string }).message).toMatch(
      /tool: no tool "no_such_tool" is known/,
    );
  });

  it('override a cap fleet-wide at once, and keep it across a coordinator restart', async () => {
    const put = await call('PUT', '/v1/tools/capped/limits', OPS, { concurrency: 1 });
    expect(put).toEqual({
      status: 200,
      body: { tool: 'capped', concurrency: 1, rate_limit: null, paused: false },
    });
    const result = await batch('capped', 4, { ms: 100 }, 'one', 60_000);
    expect(result.stats.calls.map((c) => c.outcome)).toEqual(Array(4).fill('ok'));
    const intervals = (await readFlowEvents(server.url)).filter(
      (e): e is Required<typeof e> => e.tag.startsWith('one-') && e.end !== undefined,
    );
    expect(maxOverlap(intervals)).toBe(1);
    // A new coordinator reads the override from Redis.
    coordinator.child.kill('SIGKILL');
    await coordinator.exited;
    coordinator = await startCoordinatorProcess(env());
    const changed = await call('PUT', '/v1/tools/capped/limits', OPS, {
      rate_limit: { max: 2, per_ms: 1000 },
    });
    expect(changed.body).toEqual({
      tool: 'capped',
      concurrency: 1,
      rate_limit: { max: 2, per_ms: 1000 },
      paused: false,
    });
    const listed = await call('GET', '/v1/tools', APP);
    const capped = (listed.body.tools as { name: string; limits: unknown }[]).find(
      (t) => t.name === 'capped',
    );
    expect(capped?.limits).toEqual({ concurrency: 1, rate_limit: { max: 2, per_ms: 1000 }, paused: false });
    const removed = await call('PUT', '/v1/tools/capped/limits', OPS, {
      concurrency: null,
      rate_limit: null,
    });
    expect(removed.body).toEqual({ tool: 'capped', concurrency: null, rate_limit: null, paused: false });
  }, 90_000);

  it('pause a tool without limits (its calls answered not started), and resume it', async () => {
    const paused = await call('POST', '/v1/tools/free/pause', OPS);
    expect(paused).toEqual({
      status: 200,
      body: { tool: 'free', concurrency: null, rate_limit: null, paused: true },
    });
    const waited = await batch('free', 2, { ms: 10 }, 'paused', 2_000);
    expect(waited.stats.calls.map((c) => c.outcome)).toEqual(['not_started', 'not_started']);
    expect(waited.tool_results[0]?.content).toMatch(
      /tool free was not started \(it did not run\): an operator paused the tool/,
    );
    expect((await readFlowEvents(server.url)).filter((e) => e.tag.startsWith('paused-'))).toEqual([]);
    const resumed = await call('POST', '/v1/tools/free/resume', OPS);
    expect(resumed.body).toMatchObject({ tool: 'free', paused: false });
    const ran = await batch('free', 2, { ms: 10 }, 'resumed', 30_000);
    expect(ran.stats.calls.map((c) => c.outcome)).toEqual(['ok', 'ok']);
    await waitFor('the metrics to show the pause lifted', async () => {
      const res = await fetch(`${coordinator.url}/metrics`, { headers: { authorization: `Bearer ${OPS}` } });
      const text = await res.text();
      return /toolq_flow_paused\{[^}]*tool="free"[^}]*\} 0/.test(text) && /toolq_flow_calls\{/.test(text);
    });
  }, 90_000);

  it('count not-started calls in their own column of the performance report, not as failures', async () => {
    // The pause above: 2 calls of `free` not started, then 2 ok, all of app alpha.
    const report = (await call('GET', '/v1/report?window=15m', APP)).body as {
      tools: { tool: string; calls: number; ok: number; not_started?: number; unknown?: number }[];
      calls: number;
      succeeded: number;
      not_started: number;
      success_rate: number;
    };
    const free = report.tools.find((t) => t.tool === 'free');
    expect(free).toMatchObject({ calls: 4, ok: 2, not_started: 2 });
    expect(free?.unknown).toBeUndefined();
    expect(report.not_started).toBeGreaterThanOrEqual(2);
    // Neither successes nor failures: the rate is over the calls answered otherwise.
    expect(report.success_rate).toBeCloseTo(report.succeeded / (report.calls - report.not_started), 9);
    // The fleet's report from Redis (toolq-report) says the same, in its text and its JSON.
    const text = await runReportCli([]);
    expect(text).toMatch(/^free\s+calls=4 .* not started=2$/m);
    expect(text).toMatch(/^Success rate: \d+\/\d+ \([\d.]+%\); not started: \d+$/m);
    const json = JSON.parse(await runReportCli(['--json'])) as typeof report;
    expect(json.tools.find((t) => t.tool === 'free')).toMatchObject({ calls: 4, ok: 2, not_started: 2 });
  }, 60_000);
});

/** `toolq-report` (pnpm report) as a process, straight from Redis: its stdout. */
async function runReportCli(args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', REPORT_CLI, ...args], {
    env: { ...process.env, REDIS_URL: server.url },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c;
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code).toBe(0);
  return stdout;
}
