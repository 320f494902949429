/**
 * The demo: the seed's scenarios on real Redis and real workers. The order scenario takes two tool
 * turns with payment and confirmation in parallel; the demo CLI (`pnpm demo --json`) runs end to end (private
 * redis-server, two worker processes, offline model) and reports the three competitor tools at 100%.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { Dispatcher, runAgent } from '@toolq/coordinator';
import { startScriptedModel } from '@toolq/scripted-model';
import { ToolqError } from '@toolq/shared';
import { startWorker, type ToolqWorker } from '@toolq/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { RUN_SOURCES } from '../../../test-support/run-sources.ts';
import { type Interval, maxOverlap, overlaps } from '../../../test-support/wait-for.ts';
import type { DemoReport } from '../run-demo.ts';
import { SCENARIOS } from '../scenarios.ts';
import demoTools from '../tools.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('pnpm demo', () => {
  it('runs the competitor analysis end to end and reports all three tools at 100%', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TOOLQ_LOG_LEVEL: 'warn' };
    delete env.REDIS_URL;
    delete env.ANTHROPIC_API_KEY;
    delete env.ANTHROPIC_BASE_URL;
    // What `pnpm demo --json` runs (`tsx examples/demo/cli.ts`), without needing pnpm on the PATH.
    const { code, stdout, stderr } = await exec(
      process.execPath,
      [...RUN_SOURCES, 'examples/demo/cli.ts', '--json'],
      { cwd: ROOT, env },
    );
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as DemoReport;
    expect(report).toMatchObject({
      scenario: 'competitors',
      offline: true,
      redis: 'private',
      status: 'end_turn',
    });
    expect(report.workers).toHaveLength(2);
    expect(report.performance.tools.map((t) => [t.tool, t.calls, t.ok])).toEqual([
      ['fetch_company_website', 3, 3],
      ['get_funding_data', 3, 3],
      ['analyze_app_store', 3, 3],
    ]);
    expect(report.performance.successRate).toBe(1);
    expect(report.answer).toContain('| Jasper | $131M |');
    // The nine calls ran in parallel: each one's run on its worker overlapped another's (from the
    // start and finish the workers recorded). How much faster that was is `pnpm bench`'s business.
    const runs = report.calls.map(runInterval);
    runs.forEach((run, i) => {
      expect(
        runs.some((other, j) => j !== i && overlaps(run, other)),
        `${report.calls[i]?.name} ran alone`,
      ).toBe(true);
    });
    console.info(
      `demo: ${report.stats.toolCalls} calls, sum ${report.stats.sumToolMs} ms vs wall ${report.stats.toolWallMs} ms ` +
        `(${report.stats.speedup}x, at most ${maxOverlap(runs)} at once), early-dispatch head start ` +
        `${report.stats.headStartMs} ms, run ${report.runMs} ms`,
    );
  });

  it('says clearly when redis-server is not installed', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const error = await startRedisServer().catch((err: unknown) => err);
      expect(error).toBeInstanceOf(ToolqError);
      expect((error as ToolqError).message).toMatch(
        /redis-server is not installed or not on the PATH.*REDIS_URL/,
      );
    } finally {
      process.env.PATH = path;
    }
  });
});

describe('demo scenarios on in-process workers', () => {
  let redis: RedisServer;
  let worker: ToolqWorker;
  let dispatcher: Dispatcher;

  beforeAll(async () => {
    redis = await startRedisServer();
    worker = await startWorker({ tools: demoTools, redisUrl: redis.url, logger: testLogger() });
    dispatcher = new Dispatcher({ redisUrl: redis.url, logger: testLogger() });
    await dispatcher.start();
  });

  afterAll(async () => {
    await dispatcher?.close();
    await worker?.close();
    await redis?.stop();
  });

  async function play(name: keyof typeof SCENARIOS) {
    const scenario = SCENARIOS[name];
    const model = await startScriptedModel(scenario.script);
    try {
      const client = new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 });
      const result = await runAgent({
        dispatcher,
        client,
        system: scenario.system,
        prompt: scenario.prompt,
        tools: scenario.tools,
        model: 'claude-sonnet-5-5',
        logger: testLogger(),
      });
      return { result, model };
    } finally {
      await model.close();
    }
  }

  it('order: create_order alone, then payment and confirmation in parallel in the next turn', async () => {
    const { result, model } = await play('order');
    expect(result.status).toBe('end_turn');
    expect(model.requests.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(result.iterations.map((it) => it.toolCalls)).toEqual([1, 2, 0]);
    expect(result.calls.map((c) => [c.iteration, c.name])).toEqual([
      [1, 'create_order'],
      [2, 'process_payment'],
      [2, 'send_confirmation'],
    ]);
    const [, pay, mail] = result.calls;
    // Both ran at the same time: each was dispatched before the other answered.
    const end = (c: typeof pay) => (c?.dispatchedAtMs ?? 0) + (c?.latencyMs ?? 0);
    expect(pay?.dispatchedAtMs ?? Infinity).toBeLessThan(end(mail));
    expect(mail?.dispatchedAtMs ?? Infinity).toBeLessThan(end(pay));
    const created = (
      result.messages[2]?.content as Anthropic.Beta.BetaToolResultBlockParam[] | undefined
    )?.[0];
    const orderId = JSON.parse(String(created?.content)).order_id;
    expect((pay?.input as { order_id?: string } | undefined)?.order_id).toBe(orderId);
    expect(result.messages.map((m) => m.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
      'user',
      'assistant',
    ]);
    expect(result.text).toMatch(
      /^Done: payment pay_\w+ is paid, and confirmation msg_\w+ was sent to ada@example\.com\.$/,
    );
  });

  it('city and stocks: every independent call in one turn, all succeed', async () => {
    for (const name of ['city', 'stocks'] as const) {
      const { result } = await play(name);
      expect(result.iterations.map((it) => it.toolCalls)).toEqual([name === 'city' ? 3 : 6, 0]);
      expect(result.calls.every((c) => !c.isError)).toBe(true);
    }
  });

  it('payment: the transfer waits for approval while the balance is read; it runs once approved', async () => {
    const scenario = SCENARIOS.payment;
    const model = await startScriptedModel(scenario.script);
    try {
      const asked: string[] = [];
      const result = await runAgent({
        dispatcher,
        client: new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries: 0 }),
        system: scenario.system,
        prompt: scenario.prompt,
        tools: scenario.tools,
        logger: testLogger(),
        approval: {
          handler: (request) => {
            asked.push(request.tool);
            return { decision: 'approve', by: 'test' };
          },
        },
      });
      // Only the transfer above 1000 EUR asked; the balance needed nobody.
      expect(asked).toEqual(['transfer_funds']);
      expect(result.calls.map((c) => [c.name, c.isError])).toEqual([
        ['check_balance', false],
        ['transfer_funds', false],
      ]);
      expect(result.text).toMatch(/^Transfer tr_\w+ of 2400 EUR to Initech GmbH was approved and sent\./);
    } finally {
      await model.close();
    }
  });

  it('the demo tools say what may run in parallel and what depends on what', () => {
    const describe = (name: string) => demoTools.find((t) => t.name === name)?.description ?? '';
    for (const name of [
      'fetch_company_website',
      'get_funding_data',
      'analyze_app_store',
      'get_stock_price',
    ]) {
      expect(describe(name)).toMatch(/parallel/i);
    }
    expect(describe('create_order')).toMatch(/process_payment and send_confirmation need the order_id/);
    expect(describe('process_payment')).toMatch(/Depends on create_order.*parallel with send_confirmation/);
  });
});

/** A call's run on its worker, in ms after the agent run started (dispatch + queue wait, + run time). */
function runInterval(call: {
  name: string;
  dispatchedAtMs: number;
  queueWaitMs?: number;
  runMs?: number;
}): Interval {
  if (call.queueWaitMs === undefined || call.runMs === undefined)
    throw new Error(`${call.name}: the worker recorded no start and finish`);
  const start = call.dispatchedAtMs + call.queueWaitMs;
  return { start, end: start + call.runMs };
}

function exec(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
