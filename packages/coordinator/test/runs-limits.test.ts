/**
 * What bounds a run and its app, against real coordinator processes on a real Redis and the
 * scripted model: the size of a run's input (413), the conversation kept once in Redis, the
 * app's quota of unfinished runs (429), fair turns between apps for the run slots, the model
 * request timeout, and retention counted from a run's finish with an index that stays honest.
 */
import { type ScriptedModel, type ScriptedTurn, startScriptedModel, text } from '@toolq/scripted-model';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { letTimePass, waitFor } from '../../../test-support/wait-for.ts';
import { api, promptOf, waitForRun } from './runs-support.ts';

const ALPHA = 'alpha-token-0123456789abcdef';
const BETA = 'beta-token-0123456789abcdef0';
const GAMMA = 'gamma-token-0123456789abcdef';
const RETENTION_MS = 1_500;

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;
let redis: RedisServer;
let client: Redis;
let model: ScriptedModel;
/** Input limit 20 kB, two unfinished runs per app, model timeout 1 s. */
let limits: Coordinator;
/** Two run slots. */
let fair: Coordinator;
/** Runs kept 1.5 s after they finish. */
let kept: Coordinator;

/** Turns held until the test opens their gate (`gate:<name>`), by name. */
const gates = new Map<string, { opened: Promise<void>; open: () => void }>();
function gate(name: string) {
  let entry = gates.get(name);
  if (!entry) {
    let open = () => {};
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    entry = { opened, open };
    gates.set(name, entry);
  }
  return entry;
}

/**
 * `wait:<ms>` starts its answer at once and writes its text after that long (a slow turn, not a
 * silent model); `gate:<name>` answers once the test opens that gate, however slow the machine;
 * `hang` does not start answering for a minute; anything else answers at once.
 */
async function script(ctx: { body: unknown }): Promise<ScriptedTurn> {
  const [kind, arg = '0'] = promptOf(ctx.body as never).split(':');
  if (kind === 'wait') return { content: [text('waited', Number(arg))] };
  if (kind === 'gate') {
    await gate(arg).opened;
    return { content: [text('let through')] };
  }
  if (kind === 'hang') return { content: [text('too late')], delayMs: 60_000 };
  return { content: [text('ok')] };
}

const start = (prefix: string, env: Record<string, string>) =>
  startCoordinatorProcess({
    REDIS_URL: redis.url,
    TOOLQ_PREFIX: prefix,
    ANTHROPIC_API_KEY: 'test-key',
    ANTHROPIC_BASE_URL: model.url,
    TOOLQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA},gamma:${GAMMA}`,
    ...env,
  });

beforeAll(async () => {
  redis = await startRedisServer();
  client = new Redis(redis.url);
  model = await startScriptedModel(script);
  [limits, fair, kept] = await Promise.all([
    start('lim', {
      TOOLQ_MAX_RUN_INPUT_BYTES: '20000',
      TOOLQ_MAX_ACTIVE_RUNS_PER_APP: '2',
      TOOLQ_MODEL_TIMEOUT_MS: '1000',
    }),
    start('fair', { TOOLQ_RUN_CONCURRENCY: '2' }),
    start('kept', { TOOLQ_RUN_RETENTION_MS: String(RETENTION_MS) }),
  ]);
});

afterAll(async () => {
  for (const c of [limits, fair, kept]) c?.child.kill('SIGKILL');
  await Promise.all([limits?.exited, fair?.exited, kept?.exited]);
  await model?.close();
  client?.disconnect();
  await redis?.stop();
});

async function post(url: string, token: string, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await api(url, '/v1/runs', { method: 'POST', token, body });
  return { status: res.status, json: await res.json() };
}

async function startRun(url: string, token: string, prompt: string): Promise<string> {
  const { status, json } = await post(url, token, { prompt, tools: [] });
  expect(status, JSON.stringify(json)).toBe(202);
  return (json as { run_id: string }).run_id;
}

interface RawRun {
  status: string;
  created_at: string;
  finished_at?: string;
  result?: { messages: unknown[] };
  error?: { code: string; message: string };
}

async function rawRun(url: string, token: string, runId: string): Promise<RawRun> {
  return (await (await api(url, `/v1/runs/${runId}`, { token })).json()) as RawRun;
}

describe('the size of a run', () => {
  it('a run whose input is over TOOLQ_MAX_RUN_INPUT_BYTES is refused with 413 naming its largest part', async () => {
    const { status, json } = await post(limits.url, ALPHA, {
      messages: [
        { role: 'user', content: 'hello' },
        { role: 'assistant', content: 'hi' },
        { role: 'user', content: 'x'.repeat(30_000) },
      ],
      tools: [],
    });
    expect(status).toBe(413);
    const error = (json as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('RUN_TOO_LARGE');
    expect(error.message).toMatch(/TOOLQ_MAX_RUN_INPUT_BYTES \(20000\)/);
    expect(error.message).toMatch(/the largest part is messages\[2\]\.content \(30002 bytes\)/);
    // The prompt and the system prompt count too.
    const system = await post(limits.url, ALPHA, { prompt: 'hi', system: 's'.repeat(25_000), tools: [] });
    expect(system.status).toBe(413);
    expect(JSON.stringify(system.json)).toMatch(/the largest part is system/);
    expect(await client.keys('lim:{r.*')).toEqual([]);
  });

  it("keeps the conversation once: the result's messages are the request's and the new ones, stored without the request's", async () => {
    const marker = `MARK-${'y'.repeat(8_000)}`;
    const messages = [
      { role: 'user', content: marker },
      { role: 'assistant', content: 'noted' },
      { role: 'user', content: 'go on' },
    ];
    const { status, json } = await post(limits.url, BETA, { messages, tools: [] });
    expect(status).toBe(202);
    const runId = (json as { run_id: string }).run_id;
    expect((await waitForRun(limits.url, runId, BETA)).status).toBe('done');
    const run = await rawRun(limits.url, BETA, runId);
    expect(run.result?.messages).toEqual([
      ...messages,
      { role: 'assistant', content: [expect.objectContaining({ type: 'text', text: 'ok' })] },
    ]);
    const [request, result] = (await client.hmget(`lim:{r.${runId}}:run`, 'request', 'result')).map(
      (value) => value ?? '',
    );
    expect(request).toContain(marker);
    expect(result).not.toContain('MARK-');
    // The record holds the marker's 8 kB once: the result adds its own turn and stats only.
    const fields = await client.hgetall(`lim:{r.${runId}}:run`);
    const stored = Object.values(fields).reduce((sum, value) => sum + value.length, 0);
    expect(stored).toBeLessThan((request ?? '').length + 3_000);
  });
});

describe("an app's quota of unfinished runs", () => {
  it('refuses the app one more run with 429 TOO_MANY_RUNS, not another app; a finished or cancelled run frees its place', async () => {
    // Held until the 429 is seen: a run that finished on a slow machine would free its place early.
    const first = await startRun(limits.url, GAMMA, 'gate:first');
    const second = await startRun(limits.url, GAMMA, 'wait:60000');
    const refused = await post(limits.url, GAMMA, { prompt: 'one more', tools: [] });
    expect(refused.status).toBe(429);
    expect((refused.json as { error: { code: string; message: string } }).error).toEqual({
      code: 'TOO_MANY_RUNS',
      message: expect.stringMatching(/app gamma has 2 runs not finished yet.*TOOLQ_MAX_ACTIVE_RUNS_PER_APP/),
    });
    // Another app is not held back by gamma's runs.
    expect((await waitForRun(limits.url, await startRun(limits.url, ALPHA, 'plain'), ALPHA)).status).toBe(
      'done',
    );

    gate('first').open();
    expect((await waitForRun(limits.url, first, GAMMA)).status).toBe('done');
    const third = await startRun(limits.url, GAMMA, 'gate:third');
    expect((await post(limits.url, GAMMA, { prompt: 'again', tools: [] })).status).toBe(429);
    gate('third').open();
    expect((await waitForRun(limits.url, third, GAMMA)).status).toBe('done');

    expect((await api(limits.url, `/v1/runs/${second}`, { method: 'DELETE', token: GAMMA })).status).toBe(
      200,
    );
    const [a, b] = [await startRun(limits.url, GAMMA, 'plain'), await startRun(limits.url, GAMMA, 'plain')];
    for (const id of [a, b]) expect((await waitForRun(limits.url, id, GAMMA)).status).toBe('done');
    expect(await client.zcard('lim:runs:active:gamma')).toBe(0);
  });
});

describe("the quota's count heals", () => {
  it('at the quota, runs counted but finished, or never created, are dropped; a running run without a job gets one', async () => {
    const active = 'lim:runs:active:gamma';
    const old = Date.now() - 120_000;
    // A run that finished without its release (its coordinator died after the final write).
    const done = await startRun(limits.url, GAMMA, 'plain');
    expect((await waitForRun(limits.url, done, GAMMA)).status).toBe('done');
    // A run whose POST died before its record, and one whose POST died after its record but
    // before its job.
    const [never, orphan] = ['a', 'c'].map((c) => `run_${c.repeat(24)}`) as [string, string];
    await client.hset(`lim:{r.${orphan}}:run`, {
      app: 'gamma',
      status: 'running',
      request: JSON.stringify({ prompt: 'plain', tools: [] }),
      request_hash: 'x',
      created_at: old,
      updated_at: old,
      epoch: 0,
    });
    await client.zadd(active, Date.now(), done, old, never, old, orphan);

    const admitted = await post(limits.url, GAMMA, { prompt: 'plain', tools: [] });
    expect(admitted.status, JSON.stringify(admitted.json)).toBe(202);
    expect((await waitForRun(limits.url, orphan, GAMMA)).status).toBe('done');
    expect((await waitForRun(limits.url, (admitted.json as { run_id: string }).run_id, GAMMA)).status).toBe(
      'done',
    );
    expect(await client.zcard(active)).toBe(0);
  });
});

describe('the model request timeout', () => {
  it('fails a run whose model accepts the request and never answers, within TOOLQ_MODEL_TIMEOUT_MS and its retries', async () => {
    const begun = Date.now();
    const runId = await startRun(limits.url, BETA, 'hang');
    const run = await waitForRun(limits.url, runId, BETA, 20_000);
    expect(run.status).toBe('failed');
    expect(run.error).toEqual({
      code: 'MODEL_ERROR',
      message: expect.stringMatching(
        /^the Messages API at http:\/\/127\.0\.0\.1:\d+ did not answer within 1000 ms \(the model request timeout, TOOLQ_MODEL_TIMEOUT_MS; each retry had as long\)$/,
      ),
    });
    // Three attempts of 1 s and the SDK's back-off between them.
    expect(Date.now() - begun).toBeLessThan(15_000);
  });
});

describe('fair turns between apps', () => {
  it("one app's backlog holds another app's run up for a slot, not for the whole backlog", async () => {
    // Each of alpha's runs holds its slot until the test lets it through: on a slow machine a
    // timed turn could end before beta's run is even posted.
    const backlog: string[] = [];
    for (let i = 0; i < 6; i++) backlog.push(await startRun(fair.url, ALPHA, `gate:fair-${i}`));
    const other = await startRun(fair.url, BETA, 'quick');
    // Two slots, both alpha's (runs 0 and 1). The first slot freed goes to beta's run, not to
    // alpha's next: were it alpha's, beta's run would wait behind gates nobody opens yet.
    gate('fair-0').open();
    const done = await waitForRun(fair.url, other, BETA, 30_000);
    expect(done.status).toBe('done');
    const finishedAt = Date.parse((await rawRun(fair.url, BETA, other)).finished_at ?? '');
    for (let i = 1; i < 6; i++) gate(`fair-${i}`).open();
    const runs = await Promise.all(backlog.map((id) => waitForRun(fair.url, id, ALPHA, 30_000)));
    expect(runs.every((r) => r.status === 'done')).toBe(true);
    const backlogFinished = await Promise.all(backlog.map((id) => rawRun(fair.url, ALPHA, id)));
    const before = backlog.filter((_, i) => Date.parse(backlogFinished[i]?.finished_at ?? '') <= finishedAt);
    expect(before).toEqual([backlog[0]]);
  });
});

describe('retention', () => {
  it('counts from the finish: a step longer than the retention does not lose the run', async () => {
    // A step far longer than the retention, so that a loaded machine's late look still finds it
    // running (a step of twice the retention finished before the look once).
    const runId = await startRun(kept.url, ALPHA, `wait:${RETENTION_MS * 6}`);
    await letTimePass(RETENTION_MS + 500);
    expect((await rawRun(kept.url, ALPHA, runId)).status).toBe('running');
    expect(await client.pttl(`kept:{r.${runId}}:run`)).toBe(-1);
    expect((await waitForRun(kept.url, runId, ALPHA)).status).toBe('done');
    const ttl = await client.pttl(`kept:{r.${runId}}:run`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(RETENTION_MS);
  });

  it('a finished run is listed as long as it is kept, though its app created nothing since', async () => {
    // It finishes after the retention has passed since its creation; the look comes at once after
    // its finish, with the whole retention as the margin for a loaded machine (before: a 1 s run
    // looked at 0.7 s after its finish, 0.8 s before it expired).
    const runId = await startRun(kept.url, BETA, `wait:${RETENTION_MS * 2}`);
    // The same answer as rawRun's, with its times.
    const done = (await waitForRun(kept.url, runId, BETA)) as unknown as RawRun;
    const list = (await (await api(kept.url, '/v1/runs', { token: BETA })).json()) as {
      runs: { run_id: string }[];
    };
    expect(done.status).toBe('done');
    // Past the retention after its creation, within it after its finish.
    expect(Date.parse(done.finished_at ?? '') - Date.parse(done.created_at)).toBeGreaterThan(RETENTION_MS);
    expect(list.runs.map((r) => r.run_id)).toEqual([runId]);
  });

  it("drops expired runs from the app's index, and a page is short only at the end", async () => {
    // Still running at the end (it is cancelled then): a 6 s turn finished and expired before the
    // short runs did on a loaded machine, and its entry went with them.
    const long = await startRun(kept.url, GAMMA, 'wait:60000');
    const short = [
      await startRun(kept.url, GAMMA, 'plain'),
      await startRun(kept.url, GAMMA, 'plain'),
      await startRun(kept.url, GAMMA, 'plain'),
    ];
    for (const id of short) expect((await waitForRun(kept.url, id, GAMMA)).status).toBe('done');
    await waitFor(
      'the short runs to expire',
      async () => (await client.exists(...short.map((id) => `kept:{r.${id}}:run`))) === 0 || undefined,
      10_000,
    );
    const last = await startRun(kept.url, GAMMA, 'plain');
    // The expired runs' entries went when a run was created: the index holds the live runs only.
    expect(await client.zrange('kept:runs:index:gamma', '0', '-1')).toEqual([long, last]);

    const page = (await (await api(kept.url, '/v1/runs?limit=2', { token: GAMMA })).json()) as {
      runs: { run_id: string }[];
      next_cursor: string | null;
    };
    expect(page.runs.map((r) => r.run_id)).toEqual([last, long]);
    expect(page.next_cursor).not.toBeNull();
    expect((await api(kept.url, `/v1/runs/${long}`, { method: 'DELETE', token: GAMMA })).status).toBe(200);
  });

  it('a page read over entries of expired runs is filled from the runs after them', async () => {
    // Entries left by an older version (or not yet dropped): the list skips them without ending.
    const live = await startRun(kept.url, ALPHA, 'plain');
    expect((await waitForRun(kept.url, live, ALPHA)).status).toBe('done');
    const index = 'kept:runs:index:alpha';
    const now = Date.now();
    await client.zadd(
      index,
      now + 1,
      'run_000000000000000000000001',
      now + 2,
      'run_000000000000000000000002',
    );
    const page = (await (await api(kept.url, '/v1/runs?limit=2', { token: ALPHA })).json()) as {
      runs: { run_id: string }[];
      next_cursor: string | null;
    };
    expect(page.runs.map((r) => r.run_id)).toContain(live);
  });
});
