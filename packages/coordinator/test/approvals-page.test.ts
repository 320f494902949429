/**
 * The approvals page (GET /approvals) in a real headless Chromium (Debian's /usr/bin/chromium
 * driven by playwright-core), against a real coordinator process and worker process: behind the
 * app's token, it shows the pending call (tool, input as JSON, batch, time left), a click on
 * Approve lets the batch complete, a denial needs a reason, and it loads nothing from outside the
 * machine. The screenshot (.tmp/approvals-page.png) is the one in docs/img/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api, executions } from './runs-support.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CHROMIUM = '/usr/bin/chromium';
const ALPHA = 'alpha-token-0123456789abcdef';
const TOOLS = fileURLToPath(new URL('../../../test-support/approval-tools.ts', import.meta.url));

if (!existsSync(CHROMIUM)) {
  throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
}

let redis: RedisServer;
let worker: WorkerProcess;
let coordinator: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let browser: Browser;
let dir: string;
let log: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-approvals-page-'));
  log = join(dir, 'executions.log');
  redis = await startRedisServer();
  worker = await startWorkerProcess({
    redisUrl: redis.url,
    tools: TOOLS,
    env: { TOOLQ_TEST_EXECUTIONS: log },
  });
  coordinator = await startCoordinatorProcess({ REDIS_URL: redis.url, TOOLQ_API_TOKENS: `alpha:${ALPHA}` });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  coordinator?.child.kill('SIGKILL');
  await coordinator?.exited;
  await worker?.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ran = (line: string) => executions(log).filter((l) => l === line).length;

describe('the approvals page', () => {
  it('answers 401 without the token', async () => {
    for (const path of ['/approvals', '/approvals/page.js']) {
      expect((await api(coordinator.url, path)).status).toBe(401);
    }
  });

  it('shows the pending call; a click approves it and the batch completes; nothing loads from elsewhere', async () => {
    const answer = api(coordinator.url, '/v1/tool-batches', {
      method: 'POST',
      token: ALPHA,
      body: {
        batch_id: 'page-pay',
        tool_uses: [
          {
            id: 'pay-page',
            name: 'test_pay',
            input: { amount: 1250, to: 'Initech GmbH', memo: 'invoice 2026-117' },
          },
          { id: 'look-page', name: 'test_lookup', input: { key: 'fx-rate' } },
        ],
      },
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as Record<string, unknown> }));

    const page = await browser.newPage({ viewport: { width: 1000, height: 560 } });
    try {
      // A browser adds no bearer header to a navigation: as an auth proxy in front would, the test
      // adds it to every request of the page (document, script, style, API polls).
      await page.setExtraHTTPHeaders({ authorization: `Bearer ${ALPHA}` });
      const requested: string[] = [];
      const blocked: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      page.on('console', (m) => {
        if (/Content Security Policy|Refused/i.test(m.text())) blocked.push(m.text());
      });
      const res = await page.goto(`${coordinator.url}/approvals`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-security-policy']).toContain("default-src 'none'");

      const card = page.locator('article.approval', { hasText: 'pay-page' });
      await card.waitFor({ timeout: 30_000 });
      const text = (await card.textContent()) ?? '';
      expect(text).toContain('test_pay');
      expect(text).toContain('page-pay');
      expect(text).toContain('"amount": 1250');
      expect(text).toContain('Initech GmbH');
      expect(text).toMatch(/time left\d+ min \d+ s/);
      // The lookup needed no approval and ran already; the payment did not.
      expect(ran('lookup fx-rate')).toBe(1);
      expect(ran('pay Initech GmbH 1250')).toBe(0);

      mkdirSync(join(ROOT, '.tmp'), { recursive: true });
      await page.screenshot({ path: join(ROOT, '.tmp/approvals-page.png') });
      // A denial without a reason is not sent.
      await card.getByRole('button', { name: 'Deny' }).click();
      await expect.poll(() => card.locator('.note').textContent()).toMatch(/Give a reason/);

      await card.getByRole('button', { name: 'Approve' }).click();
      await card.waitFor({ state: 'detached', timeout: 30_000 });
      await page.getByText('Nothing waits for approval.').waitFor({ timeout: 30_000 });

      const { status, body } = await answer;
      expect(status).toBe(200);
      const results = body.tool_results as { tool_use_id: string; content: string; is_error?: boolean }[];
      expect(results.map((r) => [r.tool_use_id, r.content, r.is_error ?? false])).toEqual([
        ['pay-page', 'paid 1250 to Initech GmbH', false],
        ['look-page', 'value of fx-rate', false],
      ]);
      expect(ran('pay Initech GmbH 1250')).toBe(1);
      expect(requested.length).toBeGreaterThan(3);
      expect(requested.filter((u) => !u.startsWith(`${coordinator.url}/`))).toEqual([]);
      expect(blocked).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
