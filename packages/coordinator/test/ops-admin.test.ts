/**
 * The queue admin page (bull-board at /admin/queues) in a real headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core), against a real coordinator process and worker
 * process: it loads with an operator's token, shows the pool's queue and its jobs, refuses requests
 * without a token (401) and with an app's token (403: the page shows every app's tool inputs), is
 * read-only unless TOOLQ_ADMIN_WRITE is on, and loads nothing from outside the machine (the browser
 * records every request). Each lane is shown with the tools it serves, and completed calls stay a
 * while (TOOLQ_JOB_HISTORY_MS) as recent history, without their caller context. The screenshots are
 * written to .tmp/admin-queues.png, .tmp/admin-queue-jobs.png and .tmp/admin-queue-history.png.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  spawnCoordinatorProcess,
  startCoordinatorProcess,
} from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { stopChild } from '../../../test-support/stop-child.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CHROMIUM = '/usr/bin/chromium';
/** The operator's token: the admin page is for operators. */
const TOKEN = 'admin-token-0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
/** The apps' tokens: app A sends the batches, app B must not see or touch them. */
const APP_A = 'app-a-token-0123456789abcdef';
const APP_B = 'app-b-token-0123456789abcdef';
const TOKENS = { TOOLQ_API_TOKENS: `appA:${APP_A},appB:${APP_B}`, TOOLQ_OPERATOR_TOKENS: `ops:${TOKEN}` };
const QUEUE = encodeURIComponent('{default}');
/** A second pool, whose worker is free: its calls complete, and stay as the page's history. */
const HISTORY_QUEUE = encodeURIComponent('{history}');
const WHOAMI_TOOLS = fileURLToPath(new URL('../../../test-support/whoami-tools.ts', import.meta.url));
const CONTEXT_SECRET = 'admin-history-ctx-5b2e';
const DIAGNOSTICS = 'diag_crash, diag_echo, diag_fail, diag_sleep';

if (!existsSync(CHROMIUM))
  throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);

let redis: RedisServer;
let worker: WorkerProcess;
let historyWorker: WorkerProcess;
let readOnly: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let writable: Awaited<ReturnType<typeof startCoordinatorProcess>>;
let browser: Browser;
const pendingBatches: Promise<unknown>[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  // One slot: the slow calls below keep one job active and the rest waiting.
  [worker, historyWorker] = await Promise.all([
    startWorkerProcess({ redisUrl: redis.url, concurrency: 1 }),
    startWorkerProcess({ redisUrl: redis.url, pool: 'history', tools: WHOAMI_TOOLS }),
  ]);
  [readOnly, writable] = await Promise.all([
    startCoordinatorProcess({ REDIS_URL: redis.url, ...TOKENS }),
    startCoordinatorProcess({ REDIS_URL: redis.url, ...TOKENS, TOOLQ_ADMIN_WRITE: 'true' }),
  ]);
  // A plain producer's job that breaks the contract fails at once and stays in "failed". It goes
  // first, and is failed before the slow calls take the worker's one slot: behind them it would wait.
  const producer = new Queue('{default}', { connection: { url: redis.url }, prefix: 'toolq' });
  await producer.add('diag_echo', { v: 1, tool: 'diag_echo' }, { jobId: 'broken-job', attempts: 1 });
  await waitFor('the broken job to fail', async () => (await producer.getJobCounts('failed')).failed === 1);
  await producer.close();
  for (const n of [1, 2, 3, 4]) {
    const body = {
      batch_id: `admin-slow-${n}`,
      // Far longer than the test: the counts below hold however slow the machine is.
      tool_uses: [{ id: `slow${n}`, name: 'diag_sleep', input: { ms: 120_000 } }],
      timeout_ms: 150_000,
    };
    const sent = fetch(`${readOnly.url}/v1/tool-batches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${APP_A}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).catch(() => undefined); // cut short when the coordinator stops
    pendingBatches.push(sent);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  for (const c of [readOnly, writable]) c?.child.kill('SIGKILL');
  await Promise.all([readOnly?.exited, writable?.exited]);
  await Promise.all([worker?.stop('SIGKILL'), historyWorker?.stop('SIGKILL')]);
  await Promise.all(pendingBatches);
  await redis?.stop();
});

interface QueuesResponse {
  queues: {
    name: string;
    displayName?: string;
    description?: string;
    readOnlyMode: boolean;
    counts: Record<string, number>;
  }[];
}

async function queues(url: string): Promise<QueuesResponse['queues']> {
  const res = await fetch(`${url}/admin/queues/api/queues`, { headers: auth });
  expect(res.status).toBe(200);
  return ((await res.json()) as QueuesResponse).queues;
}

/** The pool's own queue (its lanes are listed beside it). */
async function poolQueue(url: string): Promise<QueuesResponse['queues'][number] | undefined> {
  return (await queues(url)).find((q) => q.name === '{default}');
}

describe('/admin/queues', () => {
  it('answers 401 without the bearer token, for the page, its assets and its API', async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues', `/admin/queues/queue/${QUEUE}`]) {
      const res = await fetch(`${readOnly.url}${path}`);
      expect(res.status, path).toBe(401);
      const wrong = await fetch(`${readOnly.url}${path}`, {
        headers: { authorization: 'Bearer nope-nope-nope-nope' },
      });
      expect(wrong.status, path).toBe(401);
    }
  });

  it("answers 403 to an app's token: another app's tool inputs, retries and pauses stay out of its reach", async () => {
    await waitFor(
      'the slow calls to wait',
      async () => ((await poolQueue(readOnly.url))?.counts.waiting ?? 0) > 0,
    );
    for (const token of [APP_A, APP_B]) {
      const headers = { authorization: `Bearer ${token}` };
      for (const path of [
        '/admin/queues',
        '/admin/queues/api/queues',
        `/admin/queues/api/queues?activeQueue=${QUEUE}&status=waiting&page=1&jobsPerPage=10`,
        `/admin/queues/queue/${QUEUE}`,
      ]) {
        const res = await fetch(`${writable.url}${path}`, { headers });
        expect(res.status, path).toBe(403);
        const text = await res.text();
        expect(JSON.parse(text)).toMatchObject({ error: { code: 'FORBIDDEN' } });
        expect(text).not.toContain('slow');
      }
      // The page is writable here: the token, not the read-only mode, is what refuses these.
      for (const path of [`/api/queues/${QUEUE}/broken-job/retry`, '/api/queues/pause']) {
        const res = await fetch(`${writable.url}/admin/queues${path}`, { method: 'PUT', headers });
        expect(res.status, path).toBe(403);
      }
      expect((await fetch(`${writable.url}/metrics`, { headers })).status).toBe(403);
    }
    const q = await poolQueue(writable.url);
    expect(q?.counts.failed).toBe(1);
    expect(q?.counts.paused ?? 0).toBe(0);
    expect((await fetch(`${writable.url}/metrics`, { headers: auth })).status).toBe(200);
  });

  it("lists the pool's queue from the worker catalog, with its active, waiting and failed jobs", async () => {
    await waitFor('1 active, 3 waiting, 1 failed', async () => {
      const q = await poolQueue(readOnly.url);
      return q?.counts.active === 1 && q.counts.waiting === 3 && q.counts.failed === 1;
    });
    const list = await queues(readOnly.url);
    expect(list.find((q) => q.name === '{default}')).toMatchObject({
      displayName: 'pool default',
      readOnlyMode: true,
    });
    // The worker's lane (the queue of its exact tool set) is listed too, read-only as well, named
    // with the tools it serves: its name alone is a hash of them.
    const lanes = list.filter((q) => q.name.startsWith('{default.t'));
    expect(lanes.length).toBe(1);
    expect(lanes[0]?.displayName).toMatch(
      new RegExp(`^pool default, lane default\\.t[0-9a-f]{10}: ${DIAGNOSTICS}$`),
    );
    expect(lanes.every((q) => q.readOnlyMode)).toBe(true);
    const historyLane = list.find((q) => q.name.startsWith('{history.t'));
    expect(historyLane?.displayName).toMatch(/^pool history, lane history\.t[0-9a-f]{10}: whoami$/);
    // The descriptions (the page's ⓘ) list the tools too: a lane's, and those a pool's queue gets.
    expect(lanes[0]?.description).toMatch(new RegExp(`exactly these tools: ${DIAGNOSTICS}$`));
    expect(list.find((q) => q.name === '{history}')?.description).toMatch(/they all serve: whoami$/);
  });

  it("keeps completed calls a while as the page's history: a batch answers as before, its job stays without its context", async () => {
    const send = (id: string) =>
      fetch(`${readOnly.url}/v1/tool-batches`, {
        method: 'POST',
        headers: { authorization: `Bearer ${APP_A}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          tool_uses: [{ type: 'tool_use', id, name: 'whoami', input: {} }],
          context: { user: 'u-7', token: CONTEXT_SECRET },
        }),
      });
    for (const id of ['hist1', 'hist2']) {
      const res = await send(id);
      expect(res.status).toBe(200);
      const { tool_results } = (await res.json()) as {
        tool_results: { tool_use_id: string; content: string; is_error?: boolean }[];
      };
      // The tool saw the context: the batch answers exactly as it did when jobs left at once.
      expect(tool_results).toHaveLength(1);
      expect(tool_results[0]?.tool_use_id).toBe(id);
      expect(tool_results[0]?.is_error ?? false).toBe(false);
      expect(JSON.parse(tool_results[0]?.content ?? '{}')).toMatchObject({
        app: 'appA',
        keys: ['user', 'token'],
      });
    }
    const history = new Queue('{history}', { connection: { url: redis.url }, prefix: 'toolq' });
    try {
      await waitFor(
        'both calls kept as completed',
        async () => (await history.getJobCounts('completed')).completed === 2,
      );
      const kept = await history.getCompleted();
      expect(kept.map((j) => (j.data as { toolUseId: string }).toolUseId).sort()).toEqual(['hist1', 'hist2']);
      // The worker dropped the context before completing the job: it left Redis with the batch.
      for (const job of kept) expect(JSON.stringify(job.data)).not.toContain(CONTEXT_SECRET);
      expect(kept.every((j) => (j.data as { context?: unknown }).context === undefined)).toBe(true);
    } finally {
      await history.close();
    }
    const q = (await queues(readOnly.url)).find((x) => x.name === '{history}');
    expect(q?.counts.completed).toBe(2);
  });

  it('refuses retries and removals when read-only', async () => {
    for (const [method, path] of [
      ['PUT', `/api/queues/${QUEUE}/retry/failed`],
      ['PUT', `/api/queues/${QUEUE}/clean/failed`],
      ['PUT', `/api/queues/${QUEUE}/broken-job/retry`],
      ['PUT', '/api/queues/pause'],
    ] as const) {
      const res = await fetch(`${readOnly.url}/admin/queues${path}`, { method, headers: auth });
      expect(res.status, path).toBe(403);
    }
    expect((await poolQueue(readOnly.url))?.counts.failed).toBe(1);
  });

  it('shows the queue and its jobs in a real Chromium, with the token set as a header', async () => {
    mkdirSync(join(ROOT, '.tmp'), { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      // A browser cannot add a bearer header to a navigation by itself; the page's requests
      // (document, assets, API polls) all get it here, as an auth proxy in front would add it.
      await page.setExtraHTTPHeaders(auth);
      // Everything the page loads, and anything the CSP blocked.
      const requested: string[] = [];
      const blocked: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) blocked.push(m.text());
      });
      const res = await page.goto(`${readOnly.url}/admin/queues`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-security-policy']).toContain("default-src 'self'");
      await page
        .getByText('pool default')
        .first()
        .waitFor({ timeout: 30_000 })
        .catch(async (err: Error) => {
          await page.screenshot({ path: join(ROOT, '.tmp/admin-queues-failed.png'), fullPage: true });
          throw err;
        });
      // Each lane is shown with the tools it serves.
      await page.getByText(`${DIAGNOSTICS}`).first().waitFor({ timeout: 30_000 });
      expect(await page.locator('body').textContent()).toMatch(/lane history\.t[0-9a-f]{10}: whoami/);
      await page.screenshot({ path: join(ROOT, '.tmp/admin-queues.png'), fullPage: true });

      await page.goto(`${readOnly.url}/admin/queues/queue/${QUEUE}?status=waiting`);
      // Jobs are named by the dispatch's uid; their data names the caller's tool_use ids.
      await page.getByText('"slow4"').first().waitFor({ timeout: 30_000 });
      const text = await page.locator('body').textContent();
      for (const id of ['"slow2"', '"slow3"', '"slow4"']) expect(text).toContain(id);
      expect(text).toContain('diag_sleep');
      await page.screenshot({ path: join(ROOT, '.tmp/admin-queue-jobs.png'), fullPage: true });

      // Recent history: the failed job, and another pool's completed calls (named by tool).
      await page.goto(`${readOnly.url}/admin/queues/queue/${QUEUE}?status=failed`);
      await page.getByText('broken-job').first().waitFor({ timeout: 30_000 });
      await page.goto(`${readOnly.url}/admin/queues/queue/${HISTORY_QUEUE}?status=completed`);
      await page.getByText('"hist2"').first().waitFor({ timeout: 30_000 });
      const history = await page.locator('body').textContent();
      expect(history).toContain('"hist1"');
      expect(history).toContain('whoami');
      expect(history).not.toContain(CONTEXT_SECRET);
      await page.screenshot({ path: join(ROOT, '.tmp/admin-queue-history.png'), fullPage: true });
      // bull-board's page asked fonts.googleapis.com for its typeface: nothing leaves the machine now.
      expect(requested.length).toBeGreaterThan(5);
      expect(requested.filter((u) => !u.startsWith(`${readOnly.url}/`) && !u.startsWith('data:'))).toEqual(
        [],
      );
      expect(blocked).toEqual([]);
    } finally {
      await page.close();
    }

    const anonymous = await browser.newPage();
    try {
      const res = await anonymous.goto(`${readOnly.url}/admin/queues`);
      expect(res?.status()).toBe(401);
    } finally {
      await anonymous.close();
    }
  });

  it('retries a failed job when TOOLQ_ADMIN_WRITE=true', async () => {
    expect((await poolQueue(writable.url))?.readOnlyMode).toBe(false);
    const producer = new Queue('{default}', { connection: { url: redis.url }, prefix: 'toolq' });
    try {
      const before = await producer.getJob('broken-job');
      expect(await before?.getState()).toBe('failed');
      const res = await fetch(`${writable.url}/admin/queues/api/queues/${QUEUE}/broken-job/retry`, {
        method: 'PUT',
        headers: auth,
      });
      expect(res.status).toBe(204);
      // Back in the queue (behind the slow calls of the worker's one slot), or already run and
      // failed again: either way it left "failed" and went through the queue once more.
      const after = await producer.getJob('broken-job');
      const state = await after?.getState();
      const ranAgain = (after?.finishedOn ?? 0) > (before?.finishedOn ?? 0);
      expect(state === 'waiting' || state === 'active' || ranAgain, `state ${state}`).toBe(true);
    } finally {
      await producer.close();
    }
  });

  it('logs operator and app names at start, never their tokens; a token both app and operator stops it', async () => {
    const started = spawnCoordinatorProcess({ REDIS_URL: redis.url, ...TOKENS, TOOLQ_LOG_LEVEL: 'info' });
    try {
      await waitFor('the coordinator to log that it listens', async () =>
        started.output().includes('coordinator listening'),
      );
      expect(started.output()).toMatch(/"operators":\["ops"\]/);
      for (const token of [TOKEN, APP_A, APP_B]) expect(started.output()).not.toContain(token);
    } finally {
      await stopChild(started.child);
    }
    const refused = spawnCoordinatorProcess({
      REDIS_URL: redis.url,
      TOOLQ_API_TOKENS: `appA:${APP_A}`,
      TOOLQ_OPERATOR_TOKENS: `ops:${APP_A}`,
    });
    expect(await refused.exited).not.toBe(0);
    expect(refused.output()).toMatch(
      /TOOLQ_OPERATOR_TOKENS: entry 1 \(operator ops\): the token is used by an app/,
    );
    expect(refused.output()).not.toContain(APP_A);
  });
});
