/**
 * GET /v1/report is the caller's app's report: an app sees its own calls, not another app's tools
 * and volumes; the fleet's report (all apps) is for operators (`pnpm report`). Real Redis, a real
 * in-process worker, the HTTP server with two apps' tokens.
 */
import { startWorker, type ToolqWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { type FleetReport, fleetReport } from '../src/fleet-report.ts';
import { buildHttpServer, listen } from '../src/http/server.ts';
import { Dispatcher } from '../src/index.ts';

const ALPHA = 'alpha-token-0123456789abcdef';
const BETA = 'beta-token-0123456789abcdef0';
const apiTokens = new Map([
  ['alpha', ALPHA],
  ['beta', BETA],
]);

let server: RedisServer;
let worker: ToolqWorker;
let dispatcher: Dispatcher;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  server = await startRedisServer();
  worker = await startWorker({
    tools: diagnostics.filter((t) => t.name !== 'diag_crash'),
    redisUrl: server.url,
    logger: testLogger(),
  });
  dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
  await dispatcher.start();
  app = buildHttpServer({ dispatcher, apiTokens });
  url = await listen(app, { host: '127.0.0.1', port: 0, apiTokens });
});

afterAll(async () => {
  await app?.close();
  await dispatcher?.close();
  await worker?.close();
  await server?.stop();
});

async function batch(token: string, toolUses: { id: string; name: string; input: unknown }[]) {
  const res = await fetch(`${url}/v1/tool-batches`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ tool_uses: toolUses }),
  });
  expect(res.status).toBe(200);
}

async function report(token: string): Promise<FleetReport> {
  const res = await fetch(`${url}/v1/report?window=15m`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as FleetReport;
}

const summary = (r: FleetReport) => Object.fromEntries(r.tools.map((t) => [t.tool, t.calls]));

describe('GET /v1/report with several apps', () => {
  it("shows the caller's app's calls only; the fleet's report has every app's", async () => {
    await batch(ALPHA, [
      { id: 'a1', name: 'diag_echo', input: { value: 1 } },
      { id: 'a2', name: 'diag_echo', input: { value: 2 } },
      { id: 'a3', name: 'diag_fail', input: { message: 'planned' } },
    ]);
    await batch(BETA, [
      { id: 'b1', name: 'diag_sleep', input: { ms: 5 } },
      { id: 'b2', name: 'nope', input: {} },
    ]);

    const alpha = await report(ALPHA);
    expect(summary(alpha)).toEqual({ diag_echo: 2, diag_fail: 1 });
    expect([alpha.calls, alpha.succeeded]).toEqual([3, 2]);
    const beta = await report(BETA);
    expect(summary(beta)).toEqual({ diag_sleep: 1, _unknown: 1 });
    expect([beta.calls, beta.succeeded]).toEqual([2, 1]);

    // What `pnpm report` reads (an operator's view): every app's calls.
    const fleet = await fleetReport(dispatcher.callLog, '15m');
    expect(summary(fleet)).toEqual({ diag_echo: 2, diag_fail: 1, diag_sleep: 1, _unknown: 1 });
  });
});
