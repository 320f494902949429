/**
 * BullMQ workers on toolq's Cluster connection (as worker.ts builds them), idle — each blocked in
 * BZPOPMIN on the master of its queue — when that master is SIGKILLed, all take a job again after
 * the replica is promoted.
 *
 * What used to happen: BullMQ's watchdog abandons the BZPOPMIN the dead master never answers (block
 * timeout + 1 s) and reconnects the blocking connection, awaiting ioredis's Cluster connect(). When
 * that reconnect's ready check met `cluster_state:fail` (the promotion not done yet), the promise
 * never settled and the worker never looked for a job again, silently (4 of 9 runs of the old chaos
 * script; packages/shared/src/settling-cluster.ts). Five workers with different block timeouts
 * (2-6 s) reach their watchdog at different moments of the failover, so most runs of the old code
 * had at least one of them stuck.
 */
import { createRedis, duplicateConnection, type Redis } from '@toolq/shared/internal';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RedisCluster, startRedisCluster } from '../../../test-support/redis-cluster.ts';
import { waitFor } from '../../../test-support/wait-for.ts';

const PREFIX = 'toolq';
/** One hash tag: every queue on one master. */
const QUEUES = [2, 3, 4, 5, 6].map((drainDelay) => ({ name: `{idle}-${drainDelay}`, drainDelay }));

let cluster: RedisCluster;
let redis: Redis;
let connection: Redis;
const workers: Worker[] = [];
const queues: Queue[] = [];
/** Job ids each queue's worker took, by queue name. */
const taken = new Map<string, string[]>();

beforeAll(async () => {
  cluster = await startRedisCluster();
  await cluster.waitHealthy();
  redis = createRedis(cluster.config);
  connection = duplicateConnection(redis); // shared by the workers, as in worker.ts
  for (const { name, drainDelay } of QUEUES) {
    taken.set(name, []);
    const worker = new Worker(
      name,
      async (job) => {
        taken.get(name)?.push(String(job.id));
      },
      { connection, prefix: PREFIX, concurrency: 4, drainDelay },
    );
    worker.on('error', () => undefined); // connection errors during the failover are expected
    workers.push(worker);
    queues.push(new Queue(name, { connection: redis, prefix: PREFIX }));
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close(true).catch(() => undefined)));
  await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
  redis?.disconnect();
  connection?.disconnect();
  await cluster?.stop();
});

/** Clients blocked in BZPOPMIN on a node (CLIENT LIST flag `b`). */
async function blockedReaders(port: number): Promise<number> {
  const clients = String(await cluster.command(port, ['client', 'list'])).split('\n');
  return clients.filter((c) => /\bcmd=bzpopmin\b/.test(c) && /\bflags=\S*b/.test(c)).length;
}

it('workers idle when their master is SIGKILLed take jobs after the promotion', async () => {
  const key = `${PREFIX}:${QUEUES[0]?.name}:wait`;
  for (const [i, queue] of queues.entries()) await queue.add('x', {}, { jobId: `before-${i}` });
  await waitFor('every worker took its first job', () =>
    queues.every((q, i) => taken.get(q.name)?.includes(`before-${i}`)),
  );
  const master = await cluster.masterOf(key);
  const replica = await cluster.replicaOf(master);
  // Idle: every worker's blocking connection waits on the master that is about to die.
  await waitFor('every worker blocked in BZPOPMIN on the master', async () => {
    return (await blockedReaders(master.port)) === QUEUES.length;
  });

  await cluster.processOf(master.port).kill();
  await waitFor('the promotion', async () => (await cluster.masterOf(key)).port === replica.port, 60_000);
  const promotedAt = Date.now();
  for (const [i, queue] of queues.entries()) await queue.add('x', {}, { jobId: `after-${i}` });

  // A stuck worker never takes it; a recovered one within about a block timeout (its reconnect
  // re-sends the abandoned BZPOPMIN first, which may swallow the new job's marker). 60 s is for
  // a loaded machine.
  const late = () =>
    queues
      .filter((q, i) => !taken.get(q.name)?.includes(`after-${i}`))
      .map((q) => q.name)
      .join(', ');
  await waitFor('every worker took the job added after the promotion', () => late() === '', {
    timeoutMs: 60_000,
    detail: () => `not taken by the workers of ${late()}`,
  });
  console.info(`all taken ${Date.now() - promotedAt} ms after the promotion`);
  expect(late()).toBe('');
});
