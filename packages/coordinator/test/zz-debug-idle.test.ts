import { it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { startRedisCluster } from '../../../test-support/redis-cluster.ts';
import { waitFor } from '../../../test-support/wait-for.ts';
import { startWorkerProcess } from '../../../test-support/worker-process.ts';
import { Dispatcher } from '../src/index.ts';

it('idle worker across a failover of its pool', async () => {
  const cluster = await startRedisCluster();
  const w = await startWorkerProcess({
    redisUrl: 'redis://x:1',
    pool: 'idlepool',
    concurrency: 4,
    env: { ...cluster.env, TOOLQ_LOG_LEVEL: 'info' },
  });
  const d = new Dispatcher({ redis: cluster.config, logger: testLogger() });
  await d.start();
  await waitFor('w', async () => {
    await d.catalog.refresh();
    return d.catalog.liveWorkers().length === 1;
  });
  const batch = (p: string) => [{ id: `${p}1`, name: 'diag_echo', input: { value: p } }];
  let r = await d.dispatch(batch('a'), { timeoutMs: 8_000 });
  console.log('A', JSON.stringify(r.calls.map((c) => c.outcome)));
  const m0 = await cluster.masterOf('toolq:{idlepool}:x');
  const rep = await cluster.replicaOf(m0);
  const t = Date.now();
  await cluster.processOf(m0.port).kill();
  await waitFor('p', async () => (await cluster.masterOf('toolq:{idlepool}:x')).port === rep.port, 30_000);
  console.log('promoted', Date.now() - t);
  for (let i = 0; i < 4; i++) {
    const s = Date.now();
    r = await d.dispatch(batch(`p${i}`), { timeoutMs: 20_000 });
    console.log('P', i, JSON.stringify(r.calls.map((c) => c.outcome)), Date.now() - s, 'ms');
  }
  await d.close();
  await w.stop('SIGKILL');
  await cluster.stop();
}, 240_000);
