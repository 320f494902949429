/**
 * What a durable run parked on an approval costs in Redis: `tsx --conditions=toolq-source
 * bench/parked-run-memory.ts [count]`. Starts its own redis-server, the scripted model, a worker
 * (in process) serving the approval test tools and one coordinator process, starts `count` runs
 * whose first turn is a lookup and a payment that waits for approval, waits until every run is
 * parked (its job in BullMQ's delayed set: no run slot, no coordinator), and reports MEMORY USAGE
 * of each part of one parked run, and used_memory per run overall. Nothing of a parked run is in
 * any process: this is its whole cost.
 */
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';
import { startWorker } from '@toolq/worker';
import { Redis } from 'ioredis';
import approvalTools from '../test-support/approval-tools.ts';
import { startCoordinatorProcess } from '../test-support/coordinator-process.ts';
import { testLogger } from '../test-support/logger.ts';
import { startRedisServer } from '../test-support/redis-server.ts';
import { waitFor } from '../test-support/wait-for.ts';

const count = Number(process.argv[2] ?? 200);
const TOKEN = 'bench-token-0123456789abcdef';
const server = await startRedisServer();
const redis = new Redis(server.url);
const model = await startScriptedModel(
  toolTurnsScript([
    {
      text: 'Checking the balance and paying the invoice.',
      calls: (ctx) => [
        { name: 'test_lookup', input: { key: `balance-${ctx.turn}` } },
        { name: 'test_pay', input: { amount: 2400, to: 'Initech GmbH' } },
      ],
    },
  ]),
);
const worker = await startWorker({ redisUrl: server.url, tools: approvalTools, logger: testLogger() });
const coordinator = await startCoordinatorProcess({
  REDIS_URL: server.url,
  ANTHROPIC_API_KEY: 'bench-key',
  ANTHROPIC_BASE_URL: model.url,
  TOOLQ_API_TOKENS: `bench:${TOKEN}`,
  TOOLQ_MAX_ACTIVE_RUNS_PER_APP: String(count + 10),
});
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
const usage = async (key: string) => Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
const before = await usedMemory();
const runIds: string[] = [];
for (let i = 0; i < count; i++) {
  const res = await fetch(`${coordinator.url}/v1/runs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: `Pay invoice INV-${i} of 2400 EUR.`, tools: ['test_lookup', 'test_pay'] }),
  });
  runIds.push(((await res.json()) as { run_id: string }).run_id);
}
const delayed = 'toolq:{runs/agent}:delayed';
await waitFor('every run to park', async () => (await redis.zcard(delayed)) === count || undefined, 300_000);
const after = await usedMemory();
const runId = runIds[0] ?? '';
const [approvalId = ''] = await redis.zrange('toolq:approvals:pending:bench', '0', '0');
const approval = await usage(`toolq:approval:${approvalId}`);
const approvalIndexes =
  ((await usage('toolq:approvals:pending:bench')) +
    (await usage('toolq:approvals:expiring')) +
    (await usage('toolq:approvals:pending-tool:test_pay'))) /
  count;
const job = await usage(`toolq:{runs/agent}:${runId}`);
const delayedEntry = (await usage(delayed)) / count;
const record = await usage(`toolq:{r.${runId}}:run`);
const events = await usage(`toolq:{r.${runId}}:events`);
const eventKeys = await usage(`toolq:{r.${runId}}:evkeys`);
const parkOnly = approval + approvalIndexes + job + delayedEntry;
const lines = [
  `parked runs: ${count} (each: one saved turn with a lookup done and a payment waiting; input ~40 bytes)`,
  `approval hash: ${approval} B; its 3 index entries (app, expiry, tool): ${Math.round(approvalIndexes)} B`,
  `run's BullMQ job hash: ${job} B; its delayed-set entry: ${Math.round(delayedEntry)} B`,
  `=> approval + parked job: ~${Math.round(parkOnly)} B per parked run`,
  `the run itself (exists parked or not): record with checkpoint ${record} B, events ${events} B, event keys ${eventKeys} B`,
  `used_memory grew by ${Math.round((after - before) / count)} B per run (everything: run, events, batch record and name, approval, job, reply stream)`,
];
process.stdout.write(`${lines.join('\n')}\n`);
coordinator.child.kill('SIGKILL');
await coordinator.exited;
await worker.close();
await model.close();
redis.disconnect();
await server.stop();
