/**
 * toolq on a real Redis Cluster (3 masters, 1 replica each, password on every node): the CLI
 * processes configured by REDIS_CLUSTER_NODES, two pools on different masters, a burst, readiness
 * that sees what a client cannot route around, a graceful CLUSTER FAILOVER and a SIGKILLed master
 * under steady load, and a durable run taken over by a second coordinator. Every batch is answered
 * by its deadline, in order; calls succeed again after.
 */
import { fileURLToPath } from 'node:url';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { createRedis, probeRedis } from '@toolq/shared/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCoordinatorProcess } from '../../../test-support/coordinator-process.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { expectMixedBatchAnswered } from '../../../test-support/mixed-batch.ts';
import {
  type RedisCluster,
  startRedisCluster,
  tagOn as tagOnMaster,
} from '../../../test-support/redis-cluster.ts';
import { healingMs, startSteadyLoad, steadyBatch, summariseLoad } from '../../../test-support/steady-load.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';
import { api, getRun, readSse, waitForRun } from './runs-support.ts';

const TEST_TOOLS = fileURLToPath(new URL('../../../test-support/test-tools.ts', import.meta.url));

let cluster: RedisCluster;
let workers: WorkerProcess[] = [];
let dispatcher: Dispatcher;
/** Pool A and the coordinator share a master (a kill hits queue, record and reply stream at once). */
let poolA: string;
let poolB: string;
let coordinatorId: string;

/** The first candidate whose hash tag lies on a master for which `wanted` says yes. */
const tagOn = (prefix: string, wanted: (masterPort: number) => boolean, make: (i: number) => string) =>
  tagOnMaster(cluster, prefix, wanted, make);

beforeAll(async () => {
  cluster = await startRedisCluster();
  poolA = await tagOn(
    'toolq:',
    () => true,
    (i) => `pool-a${i}`,
  );
  const masterA = (await cluster.masterOf(`toolq:{${poolA}}:x`)).port;
  poolB = await tagOn(
    'toolq:',
    (p) => p !== masterA,
    (i) => `pool-b${i}`,
  );
  coordinatorId = (
    await tagOn(
      'toolq:',
      (p) => p === masterA,
      (i) => `c.coord${i}`,
    )
  ).slice(2);
  const redisUrl = cluster.urlOf(cluster.nodes[0]?.port ?? 0); // ignored: REDIS_CLUSTER_NODES wins
  workers = await Promise.all([
    startWorkerProcess({ redisUrl, pool: poolA, tools: 'diagnostics', concurrency: 32, env: cluster.env }),
    startWorkerProcess({ redisUrl, pool: poolB, tools: TEST_TOOLS, concurrency: 32, env: cluster.env }),
  ]);
  dispatcher = new Dispatcher({ redis: cluster.config, coordinatorId, logger: testLogger() });
  await dispatcher.start();
});

afterAll(async () => {
  await dispatcher?.close();
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await cluster?.stop();
});

describe('on a Redis Cluster', () => {
  it('the coordinator CLI (REDIS_CLUSTER_NODES) answers in order across pools on different masters', async () => {
    const masters = new Set(
      await Promise.all([poolA, poolB].map(async (p) => (await cluster.masterOf(`toolq:{${p}}:x`)).port)),
    );
    expect(masters.size).toBe(2);
    const coordinator = await startCoordinatorProcess({
      ...cluster.env,
      TOOLQ_COORDINATOR_ID: 'cli-coordinator',
    });
    try {
      // Ready once the reply reader has completed its first read.
      await expectMixedBatchAnswered(coordinator.url);
    } finally {
      coordinator.child.kill('SIGTERM');
      await coordinator.exited;
    }
  });

  it('a burst of 300 batches (1,200 calls) at once: all answered, in order', async () => {
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, n) => dispatcher.dispatch(steadyBatch(n), { timeoutMs: 30_000 })),
    );
    const errors = results.flatMap((r) => r.toolResults.filter((t) => t.is_error));
    expect(errors).toEqual([]);
    results.forEach((r, n) => {
      expect(r.toolResults.map((t) => t.tool_use_id)).toEqual(steadyBatch(n).map((u) => u.id));
      expect(r.toolResults[0]?.content).toBe(String(n));
    });
    console.info(`cluster burst: 1,200 calls in ${Date.now() - started} ms`);
  });

  it('a durable run (REDIS_CLUSTER_NODES): streamed from another coordinator, which finishes it when the owner is SIGKILLed', async () => {
    const model = await startScriptedModel(
      toolTurnsScript([
        {
          calls: [
            { name: 'diag_echo', input: { value: 'pool A' } },
            { name: 'test_counted', input: { ms: 5 } },
          ],
        },
        { calls: [{ name: 'diag_sleep', input: { ms: 2_000 } }] },
      ]),
    );
    const env = {
      ...cluster.env,
      ANTHROPIC_API_KEY: 'test-key',
      ANTHROPIC_BASE_URL: model.url,
      TOOLQ_RUN_TAKEOVER_MS: '3000',
    };
    const coordinators = await Promise.all([startCoordinatorProcess(env), startCoordinatorProcess(env)]);
    try {
      const [first] = coordinators;
      const created = await api(first?.url ?? '', '/v1/runs', {
        method: 'POST',
        // diag_* tools are offered to a model only when named.
        body: { prompt: 'on a cluster', tools: ['diag_echo', 'diag_sleep', 'test_counted'] },
      });
      expect(created.status).toBe(202);
      const { run_id: runId } = (await created.json()) as { run_id: string };
      // The run's record and events (`{r.<id>}`), its job (`{runs/agent}`) and its two pools hash to
      // slots of their own: the run works across masters.
      const owner = (await getRun(first?.url ?? '', runId)).coordinator;
      const [doomed, survivor] = coordinators[0]?.id === owner ? coordinators : [...coordinators].reverse();
      if (!doomed || !survivor) throw new Error('two coordinators expected');
      await readSse(survivor.url, `/v1/runs/${runId}/events`, {
        stop: (e) => e.event === 'tool_started' && e.data.tool === 'diag_sleep',
      });
      doomed.child.kill('SIGKILL');
      await doomed.exited;
      const run = await waitForRun(survivor.url, runId, undefined, 30_000);
      expect(run).toMatchObject({ status: 'done', coordinator: survivor.id, takeovers: 1 });
      expect(run.result?.calls.map((c) => c.name)).toEqual(['diag_echo', 'test_counted', 'diag_sleep']);
      const { events } = await readSse(survivor.url, `/v1/runs/${runId}/events`);
      expect(events.map((e) => e.event)).toContain('run_resumed');
      expect(events.at(-1)?.event).toBe('done');
    } finally {
      for (const c of coordinators) c.child.kill('SIGKILL');
      await Promise.all(coordinators.map((c) => c.exited));
      await model.close();
    }
  });

  it('readiness is false where a client cannot route: MOVED to a standalone client, true through the cluster client', async () => {
    // The CLI pointed at one cluster node with REDIS_URL (the misconfiguration of issue 12):
    // the catalog's key is on that node, its own batch records and reply stream are not.
    const workersOwner = await cluster.masterOf('toolq:workers');
    const strayId = (
      await tagOn(
        'toolq:',
        (p) => p !== workersOwner.port,
        (i) => `c.stray${i}`,
      )
    ).slice(2);
    const stray = await startCoordinatorProcess({
      REDIS_URL: cluster.urlOf(workersOwner.port),
      TOOLQ_COORDINATOR_ID: strayId,
    });
    try {
      const res = await fetch(`${stray.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ ready: false, reason: expect.stringMatching(/MOVED/) });
    } finally {
      stray.child.kill('SIGKILL');
      await stray.exited;
    }
    const plain = createRedis(cluster.urlOf(workersOwner.port));
    const routed = createRedis(cluster.config);
    try {
      const probe = [`toolq:{c.${strayId}}:probe`];
      const refused = await probeRedis(plain, probe);
      expect(refused).toMatchObject({
        ready: false,
        reason: expect.stringMatching(/^MOVED \d+ 127\.0\.0\.1:\d+$/),
      });
      expect(await probeRedis(routed, probe)).toEqual({ ready: true });
      expect(await dispatcher.isReady()).toBe(true);
    } finally {
      plain.disconnect();
      routed.disconnect();
    }
  });

  it('a graceful CLUSTER FAILOVER of pool B’s master under steady load loses nothing', async () => {
    const master = await cluster.masterOf(`toolq:{${poolB}}:x`);
    const replica = await cluster.replicaOf(master);
    const load = startSteadyLoad(dispatcher, { everyMs: 50, timeoutMs: 8_000, batch: steadyBatch });
    await load.healed(30); // 30 batches answered before the fault (was a fixed 1.5 s)
    const faultAt = Date.now();
    expect(await cluster.command(replica.port, ['cluster', 'failover'])).toBe('OK');
    await waitFor(
      'the replica to take over',
      async () => {
        return (await cluster.masterOf(`toolq:{${poolB}}:x`)).port === replica.port;
      },
      20_000,
    );
    const switchedMs = Date.now() - faultAt;
    await cluster.waitHealthy();
    await load.healed();
    const report = await load.stop();
    console.info(
      `${summariseLoad('cluster, graceful CLUSTER FAILOVER', report, faultAt)}; roles switched in ${switchedMs} ms`,
    );
    expect(report.broken).toEqual([]);
    expect(report.batches.length).toBeGreaterThan(30);
    expect(report.isErrorCalls).toBe(0);
    expect(report.batches.slice(-10).every((b) => b.ok)).toBe(true);
  });

  it('a SIGKILLed master (pool A’s queue, the coordinator’s records and reply stream) under steady load: every batch answered by its deadline, then calls succeed again', async () => {
    const master = await cluster.masterOf(`toolq:{${poolA}}:x`);
    expect((await cluster.masterOf(`toolq:{c.${coordinatorId}}:x`)).port).toBe(master.port);
    const replica = await cluster.replicaOf(master);
    const survivor = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== master.port);
    const plainOnSurvivor = createRedis(cluster.urlOf(survivor?.port ?? 0));
    plainOnSurvivor.on('error', () => undefined);
    const survivorKey = await tagOn(
      'toolq:',
      (p) => p === survivor?.port,
      (i) => `probe${i}`,
    );
    const reasons = new Set<string>();
    const sampler = setInterval(() => {
      void probeRedis(plainOnSurvivor, [`toolq:{${survivorKey}}:probe`], 1_000).then((r) => {
        if (!r.ready) reasons.add(r.reason.split(' ')[0] ?? r.reason);
      });
    }, 100);
    const load = startSteadyLoad(dispatcher, { everyMs: 50, timeoutMs: 8_000, batch: steadyBatch });
    try {
      await load.healed(50); // 50 batches answered before the fault (was a fixed 1.5 s)
      const faultAt = Date.now();
      await cluster.processOf(master.port).kill();
      await waitFor(
        'the replica to be promoted',
        async () => {
          return (await cluster.masterOf(`toolq:{${poolA}}:x`)).port === replica.port;
        },
        30_000,
      );
      const promotedMs = Date.now() - faultAt;
      await cluster.waitHealthy();
      // Healing is measured, not assumed: keep the load on until batches succeed again.
      await load.healed();
      const report = await load.stop();
      const heal = healingMs(report, faultAt);
      console.info(
        `${summariseLoad('cluster, SIGKILL of a master', report, faultAt)}; replica promoted in ${promotedMs} ms; ` +
          `a survivor master answered a standalone client with ${[...reasons].join(', ') || 'nothing but OK'}`,
      );
      expect(report.broken).toEqual([]);
      expect(report.batches.length).toBeGreaterThan(50);
      expect(report.batches.slice(-10).every((b) => b.ok)).toBe(true);
      expect(heal).toBeLessThan(30_000);
      // While the shard was gone, readiness said so; it says ready again now.
      expect(report.notReadySamples).toBeGreaterThan(0);
      // Between the failure detection and the promotion every master refuses keyed commands.
      expect([...reasons]).toContain('CLUSTERDOWN');
      expect(await dispatcher.isReady()).toBe(true);
    } finally {
      clearInterval(sampler);
      plainOnSurvivor.disconnect();
    }
  });
});
