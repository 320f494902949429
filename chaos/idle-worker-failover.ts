/**
 * Reproduction (not a test: it fails today) of a bug found by the Cluster failover tests: a BullMQ
 * worker on toolq's Cluster connection, idle (blocked waiting for a job) when the master of its
 * queue is SIGKILLed, never takes a job of that queue again after the replica is promoted. No
 * error is emitted and its connections say `ready`. Seen with the worker CLI as well (calls of an
 * idle pool time out; an approved call never runs: cluster-approvals.test.ts steers around it).
 * A worker busy when the master dies recovers (cluster.test.ts, cluster-delivery.test.ts).
 *
 *   node --conditions=source --import tsx chaos/idle-worker-failover.ts
 *
 * Prints "taken N ms after the kill" when the worker recovers, "NOT taken" when it does not
 * (the job was not taken in 4 of 9 runs, bullmq 6.7.0 / ioredis 6.0.0, 2026-12-05; when it was,
 * 4-9 s after the kill).
 */
import { createRedis, duplicateConnection } from '@toolq/shared/internal';
import { Queue, Worker } from 'bullmq';
import { startRedisCluster } from '../test-support/redis-cluster.ts';
import { waitFor } from '../test-support/wait-for.ts';

const cluster = await startRedisCluster();
const redis = createRedis(cluster.config);
const connection = duplicateConnection(redis);
const taken: string[] = [];
const worker = new Worker(
  '{default}',
  async (job) => {
    taken.push(String(job.id));
  },
  { connection, prefix: 'toolq', concurrency: 4, drainDelay: 5 },
);
worker.on('error', (err) => console.info(`worker error: ${err.message}`));
const queue = new Queue('{default}', { connection: redis, prefix: 'toolq' });
try {
  await queue.add('x', {}, { jobId: 'before' });
  await waitFor('the first job', () => taken.includes('before'));
  // Idle long enough to be blocked waiting for the next job when the master dies.
  await new Promise((resolve) => setTimeout(resolve, 8_000));
  const master = await cluster.masterOf('toolq:{default}:x');
  const replica = await cluster.replicaOf(master);
  const killedAt = Date.now();
  await cluster.processOf(master.port).kill();
  await waitFor(
    'the promotion',
    async () => (await cluster.masterOf('toolq:{default}:x')).port === replica.port,
    30_000,
  );
  await queue.add('x', {}, { jobId: 'after' });
  try {
    await waitFor('the job added after the promotion', () => taken.includes('after'), 40_000);
    console.info(`taken ${Date.now() - killedAt} ms after the kill`);
  } catch {
    console.info('NOT taken within 40 s of the promotion');
  }
} finally {
  await worker.close(true).catch(() => undefined);
  await queue.close().catch(() => undefined);
  redis.disconnect();
  connection.disconnect();
  await cluster.stop();
}
