/**
 * A durable run's owner acts (asks the model, dispatches) only on a lease it has confirmed *now*:
 * the lease holds until the time its check was sent plus the ms Redis said were left. An answer
 * that comes back after that (the process was off the CPU, or Redis slow) proves nothing, and is
 * asked again; a lease never confirmed in time hands the run back to the queue (its lock is still
 * this owner's: taken as lost, BullMQ would finish the job and nobody would carry the run on).
 * Found by `pnpm chaos` at load 20-40 (docs/reliability.md): a stale owner's model request after
 * the new owner had asked and saved the same turn. Real Redis, a real in-process worker, the
 * scripted model through the real SDK; `leaseLeft` answers as a slow or frozen round trip would.
 */
import Anthropic from '@anthropic-ai/sdk';
import { type Script, type ScriptedModel, startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import diagnostics from '@toolq/worker/diagnostics';
import { afterEach, describe, expect, it } from 'vitest';
import { useInProcessFleet } from '../../../test-support/in-process-fleet.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { letTimePass } from '../../../test-support/wait-for.ts';
import { executeRun } from '../src/runs/run-executor.ts';
import { RunStore } from '../src/runs/run-store.ts';

const fleet = useInProcessFleet({ workers: [{ tools: diagnostics.filter((t) => t.name === 'diag_sleep') }] });
const models: ScriptedModel[] = [];
afterEach(async () => {
  await Promise.all(models.splice(0).map((m) => m.close()));
});

let runs = 0;

const oneCall = toolTurnsScript([{ calls: [{ name: 'diag_sleep', input: { ms: 10 } }] }]);

/** A new run (by default one call of diag_sleep, then the answer) executed with this lease. */
async function execute(leaseLeft: () => Promise<number>, script: Script = oneCall, maxRetries = 0) {
  const model = await startScriptedModel(script);
  models.push(model);
  const store = new RunStore(fleet.redis, 'leasetest', 60_000);
  const runId = `run_lease_${++runs}`;
  await store.create({
    runId,
    app: 'acme',
    request: { prompt: 'Sleep.', tools: ['diag_sleep'] },
    requestHash: 'h',
    now: Date.now(),
  });
  const outcome = await executeRun(runId, {
    store,
    dispatcher: fleet.dispatcher,
    coordinatorId: 'lease-test',
    model: { client: new Anthropic({ apiKey: 'test', baseURL: model.url, maxRetries }) },
    logger: testLogger(),
    signal: new AbortController().signal,
    handingOver: () => false,
    leaseLeft,
    park: { redis: fleet.redis, prefix: 'leasetest', minMs: 10_000 },
  });
  return { outcome, asks: model.requests.length, run: await store.get(runId) };
}

describe('the lease an owner acts on', () => {
  it('a lease answered after it would have run out is asked again; confirmed, the run goes on', async () => {
    let checks = 0;
    const { outcome, asks, run } = await execute(async () => {
      checks++;
      if (checks === 1) {
        // 300 ms on the way back, for a lease that had 50 ms left when Redis answered.
        await letTimePass(300);
        return 50;
      }
      return 60_000;
    });
    expect(outcome).toBe('finished');
    expect(run?.status).toBe('done');
    expect(asks).toBe(2);
    // One check per model request and per dispatch (2 + 1), plus the one asked again.
    expect(checks).toBe(4);
  });

  it('never confirmed in time: the model is not asked, and the run is handed back, still running', async () => {
    let checks = 0;
    const { outcome, asks, run } = await execute(async () => {
      checks++;
      await letTimePass(100);
      return 20;
    });
    expect(outcome).toBe('handed_over');
    expect(asks).toBe(0);
    expect(run?.status).toBe('running');
    expect(checks).toBe(5);
  });

  it('a lapsed lease: the model is not asked, and the owner stops (another takes the run over)', async () => {
    const { outcome, asks, run } = await execute(async () => -1);
    expect(outcome).toBe('lost');
    expect(asks).toBe(0);
    expect(run?.status).toBe('running');
  });

  it("the SDK's own retry of a model request goes only on a lease that still holds", async () => {
    // The first attempt is answered 529 with a retry in 2 s; the lease had 1 s left and lapses
    // meanwhile. The SDK tries again (it retries an overloaded API), but past the lease confirmed
    // last its attempt checks the lease first, and never leaves this process.
    let lapsed = false;
    const { outcome, asks, run } = await execute(
      async () => (lapsed ? -1 : 1_000),
      () => {
        lapsed = true;
        const headers = { 'retry-after-ms': '2000' };
        return { error: { status: 529, type: 'overloaded_error', message: 'Overloaded', headers } };
      },
      2,
    );
    expect(asks).toBe(1);
    expect(outcome).toBe('lost');
    expect(run?.status).toBe('running');
  });
});
