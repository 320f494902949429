/**
 * A pool scaled to zero (KEDA minReplicaCount 0): by default a call with no live worker is answered
 * at once; a pool whose workers declared `waitForWorkers` keeps its tools known while every worker
 * is gone, and its calls wait in the queue, within their deadlines, for one to start — until the
 * pool's workers come back without a tool (or none served it for a week).
 */
import { startWorker } from '@toolq/worker';
import diagnostics from '@toolq/worker/diagnostics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import testTools from '../../../test-support/test-tools.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { Dispatcher } from '../src/index.ts';
import { refreshGauges } from '../src/queue-gauges.ts';

let server: RedisServer;
let dispatcher: Dispatcher;
const echo = diagnostics.filter((t) => t.name === 'diag_echo');

beforeAll(async () => {
  server = await startRedisServer();
  dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
  await dispatcher.start();
});

afterAll(async () => {
  await dispatcher?.close();
  await server?.stop();
});

describe('workers that scale from zero', () => {
  it('by default, a known tool whose workers are all gone is answered at once', async () => {
    const worker = await startWorker({
      tools: testTools,
      pool: 'fast',
      redisUrl: server.url,
      logger: testLogger(),
    });
    await worker.close(); // its catalog entry goes with it
    await dispatcher.catalog.refresh();
    const started = Date.now();
    const result = await dispatcher.dispatch([{ id: 'b', name: 'test_blocks', input: {} }], {
      timeoutMs: 60_000,
    });
    // At once, not at its 60 s deadline (a 5 s deadline was too near a loaded machine's "at once").
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.calls[0]?.outcome).toBe('unknown_tool');
  });

  it('in a waiting pool, a call waits in the queue for the first worker to start', async () => {
    const first = await startWorker({
      tools: echo,
      pool: 'zero',
      waitForWorkers: true,
      redisUrl: server.url,
      logger: testLogger(),
    });
    await first.close(); // scaled to zero
    await dispatcher.catalog.refresh();
    expect(dispatcher.catalog.list().find((t) => t.name === 'diag_echo')).toMatchObject({
      liveWorkers: 0,
      waitsForWorkers: true,
      pools: ['zero'],
    });
    const pending = dispatcher.dispatch([{ id: 'e', name: 'diag_echo', input: { value: 'woke up' } }], {
      timeoutMs: 20_000,
    });
    // What KEDA and ToolqNoLiveWorkers see: no worker, by design, and the call waiting to wake one.
    // Waited for (the call's job is added as the dispatch goes on; a fixed 500 ms was short under
    // load); that nobody runs it meanwhile is shown below: the revived worker is the one that does.
    const value = async (gauge: { get(): Promise<{ values: { labels: object; value: number }[] }> }) =>
      Object.fromEntries((await gauge.get()).values.map((v) => [JSON.stringify(v.labels), v.value] as const));
    const { metrics } = dispatcher;
    await waitFor('the call to wait in the queue', async () => {
      await refreshGauges(dispatcher);
      return (await value(metrics.queueJobs))['{"pool":"zero","state":"waiting"}'] === 1 || undefined;
    });
    expect(await value(metrics.waitsForWorkers)).toMatchObject({ '{"pool":"zero"}': 1 });
    expect(await value(metrics.workers)).toMatchObject({ '{"pool":"zero"}': 0 });
    expect(await value(metrics.queueJobs)).toMatchObject({ '{"pool":"zero","state":"waiting"}': 1 });
    const revived = await startWorker({
      tools: echo,
      pool: 'zero',
      waitForWorkers: true,
      redisUrl: server.url,
      logger: testLogger(),
    });
    try {
      const result = await pending;
      expect(result.toolResults).toEqual([{ type: 'tool_result', tool_use_id: 'e', content: 'woke up' }]);
      expect(result.calls[0]?.worker).toBe(revived.id);
    } finally {
      await revived.close();
    }
  });

  it('a waiting pool forgets a tool once its workers re-register without it', async () => {
    const only = (...names: string[]) => testTools.filter((t) => names.includes(t.name));
    const start = (tools: typeof testTools) =>
      startWorker({
        tools,
        pool: 'shrink',
        waitForWorkers: true,
        redisUrl: server.url,
        logger: testLogger(),
      });
    await (await start(only('test_counted', 'test_keys'))).close(); // scaled to zero
    await dispatcher.catalog.refresh();
    expect(dispatcher.catalog.lookupCached('test_keys')).toMatchObject({
      kind: 'ok',
      pool: 'shrink',
      workers: 0,
    });
    // A later start than the first worker's (registrations are ordered by their millisecond).
    const closedAt = Date.now();
    await waitFor('the clock to pass the first start', () => Date.now() > closedAt || undefined, {
      intervalMs: 1,
    });
    // The next deployment no longer has test_keys: a call for it must not wait for a worker that never comes.
    await (await start(only('test_counted'))).close();
    await dispatcher.catalog.refresh();
    expect(dispatcher.catalog.lookupCached('test_keys')).toEqual({ kind: 'unknown' });
    expect(dispatcher.catalog.lookupCached('test_counted')).toMatchObject({
      kind: 'ok',
      pool: 'shrink',
      workers: 0,
    });
  });

  it('in a waiting pool, a call still times out at its deadline when no worker comes', async () => {
    await dispatcher.catalog.refresh();
    const result = await dispatcher.dispatch([{ id: 'e', name: 'diag_echo', input: { value: 1 } }], {
      timeoutMs: 800,
    });
    expect(result.toolResults[0]).toMatchObject({
      is_error: true,
      content: 'Tool diag_echo timed out after 0.8s',
    });
  });
});
