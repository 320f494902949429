/**
 * A durable run's owner that loses its lease without dying (Redis gone longer than the job's lock,
 * a long stall) must not act for the run any more once another coordinator may have it: no model
 * request, no dispatch. Found by `pnpm chaos --seed 7` (docs/reliability.md): the stale owner's
 * model response came back after the takeover and its early-dispatched call ran a second time,
 * beside the new owner's. Real coordinator processes, a real worker, real Redis, the scripted
 * model; the lease is lost deterministically by deleting the run's BullMQ job lock, which is what
 * a lapsed lock is.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type ScriptContext,
  type ScriptedModel,
  startScriptedModel,
  toolTurnsScript,
} from '@toolq/scripted-model';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { letTimePass, waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { api, executions, getRun, promptOf, waitForRun } from './runs-support.ts';

const TOKEN = 'stale-token-0123456789abcdef';
const TAKEOVER_MS = 3_000;
const RUN_TOOLS = fileURLToPath(new URL('../../../test-support/run-tools.ts', import.meta.url));

type Coordinator = Awaited<ReturnType<typeof startCoordinatorProcess>>;
let redis: RedisServer;
let client: Redis;
let model: ScriptedModel;
let worker: WorkerProcess;
let coordinators: Coordinator[] = [];
let dir: string;
let log: string;

/** The first ask of the run's first turn is held until the test lets it go (the stale owner's). */
let firstAsk: { arrived: () => void; release: Promise<void> } | undefined;
const asks: { turn: number; at: number }[] = [];

const turns = toolTurnsScript([
  // A fixed tool_use id: a new owner asking again gets the very same call, as in the chaos run.
  { calls: [{ id: 'toolu_stale_1', name: 'test_slow', input: { ms: 300, label: 'stale' } }] },
]);

async function script(ctx: ScriptContext) {
  if (promptOf(ctx.body) === 'stale-owner') {
    asks.push({ turn: ctx.turn, at: Date.now() });
    const held = ctx.turn === 0 ? firstAsk : undefined;
    if (held) {
      firstAsk = undefined;
      held.arrived();
      await held.release;
    }
  }
  return turns(ctx);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'toolq-stale-'));
  log = join(dir, 'executions.log');
  redis = await startRedisServer();
  client = new Redis(redis.url);
  model = await startScriptedModel(script);
  worker = await startWorkerProcess({
    redisUrl: redis.url,
    tools: RUN_TOOLS,
    concurrency: 4,
    env: { TOOLQ_TEST_EXECUTIONS: log },
  });
  const start = () =>
    startCoordinatorProcess({
      REDIS_URL: redis.url,
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      TOOLQ_API_TOKEN: TOKEN,
      TOOLQ_RUN_TAKEOVER_MS: String(TAKEOVER_MS),
      // One run slot each: the stale owner's slot stays busy, so the other coordinator takes the run.
      TOOLQ_RUN_CONCURRENCY: '1',
    });
  coordinators = await Promise.all([start(), start()]);
});

afterAll(async () => {
  for (const c of coordinators) c.child.kill('SIGKILL');
  await Promise.all(coordinators.map((c) => c.exited));
  await worker?.stop();
  await model?.close();
  client?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const count = (line: string) => executions(log).filter((l) => l === line).length;

describe('an owner that lost its lease while its model request was out', () => {
  it('dispatches nothing when the response comes back after the takeover: the call starts once', async () => {
    let release = () => {};
    let asked = false;
    firstAsk = {
      arrived: () => {
        asked = true;
      },
      release: new Promise<void>((r) => {
        release = r;
      }),
    };
    const [first] = coordinators;
    if (!first) throw new Error('no coordinator');
    const res = await api(first.url, '/v1/runs', {
      method: 'POST',
      token: TOKEN,
      body: { prompt: 'stale-owner', tools: ['test_slow'] },
    });
    expect(res.status).toBe(202);
    const { run_id: runId } = (await res.json()) as { run_id: string };
    try {
      await waitFor('the owner to ask the model', () => asked);
      const owner = (await getRun(first.url, runId, TOKEN)).coordinator;
      // The owner's lock lapses (as when Redis was away for longer than it): it cannot renew it.
      expect(await client.del(`toolq:{runs/agent}:${runId}:lock`)).toBe(1);
      const taken = await waitFor(
        'the other coordinator to take the run over',
        async () => {
          const run = await getRun(first.url, runId, TOKEN);
          return run.takeovers === 1 ? run : undefined;
        },
        TAKEOVER_MS * 4,
      );
      expect(taken.coordinator).not.toBe(owner);
      // The new owner asks again for the unsaved turn and runs its call.
      await waitFor('the new owner to start the call', () => count('start stale') === 1 || undefined);
    } finally {
      // The stale owner's response comes back now, its tool_use block first (early dispatch).
      release();
    }
    const run = await waitForRun(first.url, runId, TOKEN);
    expect(run).toMatchObject({ status: 'done', takeovers: 1 });
    // Long enough for the stale owner's dispatch, had it made one, to start on the idle worker.
    await letTimePass(1_500);
    expect(executions(log).filter((l) => l.endsWith(' stale'))).toEqual(['start stale', 'end stale']);
    // Asked for the first turn once per owner (the response was never saved), the second once.
    expect(asks.map((a) => a.turn)).toEqual([0, 0, 1]);
  });
});
