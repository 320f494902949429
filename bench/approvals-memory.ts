/**
 * What a pending approval costs in Redis: `tsx --conditions=toolq-source bench/approvals-memory.ts
 * [count]`. Starts its own redis-server, an in-process worker serving the approval test tools and
 * a Dispatcher, sends `count` batches of one payment each that waits for approval, and reports
 * MEMORY USAGE of an approval's hash and of the two indexes per entry (and used_memory overall).
 * No coordinator process, worker slot or timer is held per approval: this is the whole cost.
 */
import { Dispatcher } from '@toolq/coordinator';
import { startWorker } from '@toolq/worker';
import { Redis } from 'ioredis';
import approvalTools from '../test-support/approval-tools.ts';
import { testLogger } from '../test-support/logger.ts';
import { startRedisServer } from '../test-support/redis-server.ts';
import { waitFor } from '../test-support/wait-for.ts';

const count = Number(process.argv[2] ?? 1000);
const server = await startRedisServer();
const redis = new Redis(server.url);
const worker = await startWorker({ redisUrl: server.url, tools: approvalTools, logger: testLogger() });
const dispatcher = new Dispatcher({ redisUrl: server.url, logger: testLogger() });
await dispatcher.start();
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
const before = await usedMemory();
const batches = Array.from({ length: count }, (_, i) =>
  dispatcher
    .dispatch([{ id: `pay${i}`, name: 'test_pay', input: { amount: 100 + i + 1, to: `supplier-${i}` } }], {
      app: 'bench',
    })
    .catch(() => undefined),
);
await waitFor(
  'every approval to be recorded',
  async () => (await redis.zcard('toolq:approvals:pending:bench')) === count || undefined,
  120_000,
);
const after = await usedMemory();
const [first = ''] = await redis.zrange('toolq:approvals:pending:bench', '0', '0');
const record = (await redis.call('MEMORY', 'USAGE', `toolq:approval:${first}`, 'SAMPLES', '0')) as number;
const index = (await redis.call(
  'MEMORY',
  'USAGE',
  'toolq:approvals:pending:bench',
  'SAMPLES',
  '0',
)) as number;
const expiring = (await redis.call('MEMORY', 'USAGE', 'toolq:approvals:expiring', 'SAMPLES', '0')) as number;
const perApproval = record + (index + expiring) / count;
const lines = [
  `pending approvals: ${count} (one test_pay call each, input ~40 bytes of JSON)`,
  `approval hash (MEMORY USAGE): ${record} bytes`,
  `its two index entries: ${Math.round((index + expiring) / count)} bytes (${index} + ${expiring} bytes for ${count})`,
  `per pending approval: ~${Math.round(perApproval)} bytes (+ the input's size beyond ~40 bytes, twice: request and job)`,
  `used_memory grew by ${Math.round((after - before) / count)} bytes per batch (its record, name, reply stream entries, approval)`,
];
process.stdout.write(`${lines.join('\n')}\n`);
dispatcher.cancelAll('bench over');
await Promise.all(batches);
await dispatcher.close();
await worker.close();
redis.disconnect();
await server.stop();
