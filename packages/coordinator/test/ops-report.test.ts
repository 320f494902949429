/**
 * The fleet's performance report: two coordinator processes and a worker process add their calls
 * to the call log in Redis, and GET /v1/report (on either coordinator) and `pnpm report` give the
 * same per-tool numbers for all of them, plain producers' calls included. Also measures what the
 * call log costs Redis and the process per call.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CallLog, callLogKey, closeRedis, createRedis, readCallLog } from '@toolq/shared/internal';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { toReport } from '../src/fleet-report.ts';
import type { reportResponseSchema } from '../src/http/responses.ts';

/** GET /v1/report's body, as on the wire. */
type WireReport = z.infer<typeof reportResponseSchema>;

const REPORT_CLI = fileURLToPath(new URL('../src/report-cli.ts', import.meta.url));
const PREFIX = 'toolq';

let redis: RedisServer;
let worker: WorkerProcess;
let a: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let b: Awaited<ReturnType<typeof startCoordinatorProcess>>;

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startWorkerProcess({ redisUrl: redis.url, concurrency: 64 });
  [a, b] = await Promise.all([
    startCoordinatorProcess({ REDIS_URL: redis.url }),
    startCoordinatorProcess({ REDIS_URL: redis.url }),
  ]);
});

afterAll(async () => {
  for (const c of [a, b]) c?.child.kill('SIGTERM');
  await Promise.all([a?.exited, b?.exited, worker?.stop()]);
  await redis?.stop();
});

async function batch(url: string, toolUses: { id: string; name: string; input: unknown }[]) {
  const res = await fetch(`${url}/v1/tool-batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tool_uses: toolUses, timeout_ms: 10_000 }),
  });
  expect(res.status).toBe(200);
}

const uses = (n: number, name: string, input: (i: number) => unknown, tag: string) =>
  Array.from({ length: n }, (_, i) => ({ id: `${tag}${i}`, name, input: input(i) }));

async function report(url: string, window = '15m'): Promise<WireReport> {
  const res = await fetch(`${url}/v1/report?window=${window}`);
  expect(res.status).toBe(200);
  return (await res.json()) as WireReport;
}

function runReportCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', REPORT_CLI, ...args], {
    env: { ...process.env, REDIS_URL: redis.url, TOOLQ_PREFIX: PREFIX },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c;
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c;
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

describe('the fleet performance report', () => {
  it('covers the calls of both coordinators and of a plain producer, on either coordinator and in pnpm report', async () => {
    // 18 sleeps of 40 ms and 2 of 400 ms through A: p95 is the 19th of 20, a 400 ms sleep.
    await batch(
      a.url,
      uses(20, 'diag_sleep', (i) => ({ ms: i < 18 ? 40 : 400 }), 's'),
    );
    await batch(
      a.url,
      uses(2, 'diag_fail', () => ({ message: 'planned' }), 'f'),
    );
    await batch(b.url, [
      ...uses(10, 'diag_echo', (i) => ({ value: i }), 'e'),
      { id: 'u', name: 'nope', input: {} },
    ]);
    const producer = new Queue('{default}', { connection: { url: redis.url }, prefix: PREFIX });
    const job = await producer.add('diag_echo', {
      v: 1,
      tool: 'diag_echo',
      input: { value: 'plain' },
      toolUseId: 'plain_1',
      deadline: Date.now() + 10_000,
      timeoutMs: 10_000,
      enqueuedAt: Date.now(),
    });
    const deadline = Date.now() + 20_000;
    let fromA = await report(a.url);
    // Other processes flush once a second.
    while (fromA.calls < 34 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      fromA = await report(a.url);
    }
    expect(await job.getState()).toBe('completed');
    await producer.close();

    const byTool = Object.fromEntries(fromA.tools.map((t) => [t.tool, t]));
    expect(fromA.calls).toBe(34);
    expect(fromA.succeeded).toBe(31);
    expect(fromA.success_rate).toBeCloseTo(31 / 34, 5);
    expect(byTool.diag_sleep).toMatchObject({ calls: 20, ok: 20 });
    expect(byTool.diag_echo).toMatchObject({ calls: 11, ok: 11 });
    expect(byTool.diag_fail).toMatchObject({ calls: 2, ok: 0 });
    expect(byTool._unknown).toMatchObject({ calls: 1, ok: 0 });
    const sleep = byTool.diag_sleep;
    // Run times on the worker: 40 ms (+ timer slack) x18, 400 ms x2; the histogram is within 2.5%.
    expect(sleep?.max_ms).toBeGreaterThanOrEqual(400);
    expect(sleep?.p95_ms).toBeGreaterThanOrEqual(400 * 0.975);
    expect(sleep?.p95_ms).toBeLessThanOrEqual(sleep?.max_ms ?? 0);
    expect(sleep?.avg_ms).toBeGreaterThanOrEqual((18 * 40 + 2 * 400) / 20);
    // Below the max, whatever the load: an average, not the slowest call.
    expect(sleep?.avg_ms).toBeLessThan(sleep?.max_ms ?? 0);

    const fromB = await report(b.url);
    expect(fromB.tools).toEqual(fromA.tools);

    const cli = await runReportCli(['--window', '15m', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as WireReport).tools).toEqual(fromA.tools);
    const text = await runReportCli([]);
    console.info(text.stdout);
    expect(text.stdout).toMatch(/diag_sleep\s+calls=20 {2}avg=0\.\d{3}s {2}p95=0\.\d{3}s {2}max=0\.4\d\ds/);
    expect(text.stdout).toContain('Success rate: 31/34 (91.2%)');
  });

  it('says what is wrong with a bad window', async () => {
    const res = await fetch(`${a.url}/v1/report?window=forever`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain(
      'window: "forever" is not a duration like 30s, 15m, 2h or 1d',
    );
    expect((await fetch(`${a.url}/v1/report?window=3d`)).status).toBe(400);
    const twice = await fetch(`${a.url}/v1/report?window=15m&window=1h`);
    expect(twice.status).toBe(400);
    expect(((await twice.json()) as { error: { message: string } }).error.message).toMatch(
      /^query: window: /,
    );
    const cli = await runReportCli(['--window', '0m']);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('window: 0m is outside');
  });

  it('costs Redis one script a second per process and a few KB a minute, whatever the call rate', async () => {
    const client = createRedis(redis.url);
    const log = new CallLog({ redis: client, prefix: 'measure' });
    try {
      await client.config('RESETSTAT');
      const calls = 100_000;
      const started = process.hrtime.bigint();
      for (let i = 0; i < calls; i++) log.record(`tool_${i % 10}`, (i * 7919) % 5_000, i % 50 !== 0);
      const nsPerCall = Number(process.hrtime.bigint() - started) / calls;
      await log.flush();
      const stats = await client.info('commandstats');
      const evals =
        Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0) +
        Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1] ?? 0);
      const keys = await client.keys('measure:calllog:*');
      const bytes = (await Promise.all(keys.map((k) => client.memory('USAGE', k)))).reduce<number>(
        (n, b) => n + Number(b ?? 0),
        0,
      );
      const ttl = await client.pttl(keys[0] ?? '');
      console.info(
        `call log: ${calls} calls over 10 tools -> ${evals} script call(s), ${keys.length} key(s), ${bytes} bytes in Redis; record() ${nsPerCall.toFixed(0)} ns/call in-process`,
      );
      expect(evals).toBeLessThanOrEqual(2); // one per minute bucket touched (two at a minute boundary)
      expect(bytes).toBeLessThan(64 * 1024);
      expect(ttl).toBeGreaterThan(24 * 3600_000);

      const window = await readCallLog(client, { prefix: 'measure', windowMs: 60_000 });
      const r = toReport(window, '1m');
      expect(r.calls).toBe(calls);
      expect(r.succeeded).toBe(calls - calls / 50);
      // Durations are uniform over 0..4999 ms: the true p95 is ~4750 ms.
      for (const t of r.tools) {
        expect(t.p95Ms).toBeGreaterThan(4_750 * 0.97);
        expect(t.p95Ms).toBeLessThan(4_750 * 1.03);
        expect(t.maxMs).toBeLessThanOrEqual(4_999);
      }
      expect(callLogKey('measure', 1)).toBe('measure:calllog:1');
    } finally {
      await log.close();
      await closeRedis(client);
    }
  });
});
