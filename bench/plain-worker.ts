/**
 * A plain BullMQ worker, the hand-written baseline: a child process serving the same diagnostics
 * tool functions toolq serves (validated with their zod schemas), with nothing of toolq around
 * them. It returns `{ value, runMs }` so the barrier on the other side knows the call's run time.
 *
 *   tsx bench/plain-worker.ts <redisUrl> <queueName> <prefix> <concurrency>
 *
 * Prints `{"event":"ready"}` on stdout once the worker is connected.
 */
import type { AnyTool } from '@toolq/shared';
import { diagEcho, diagSleep } from '@toolq/worker/diagnostics';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const [redisUrl, queueName, prefix, concurrencyArg] = process.argv.slice(2);
if (!redisUrl || !queueName || !prefix) {
  process.stderr.write('usage: plain-worker.ts <redisUrl> <queueName> <prefix> [concurrency]\n');
  process.exit(2);
}

const tools = new Map<string, AnyTool>([
  [diagEcho.name, diagEcho],
  [diagSleep.name, diagSleep],
]);

const worker = new Worker(
  queueName,
  async (job, _token, signal) => {
    const tool = tools.get(job.name);
    if (!tool) throw new Error(`Unknown tool: ${job.name}`);
    const startedAt = Date.now();
    const input = tool.input.parse(job.data);
    const value = await tool.run(input, {
      signal: signal ?? new AbortController().signal,
      attempt: 1,
      app: 'default',
      context: {},
      toolUseId: String(job.id),
      idempotencyKey: String(job.id),
      batchUid: 'plain',
      reportProgress: () => undefined,
      batchId: 'plain',
    });
    // Same clock as toolq's workers (Date.now), so run times are comparable.
    return { value, runMs: Date.now() - startedAt };
  },
  {
    connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
    prefix,
    concurrency: Number(concurrencyArg ?? 32),
  },
);
worker.on('error', (err) => process.stderr.write(`plain worker error: ${err.message}\n`));

await worker.waitUntilReady();
process.stdout.write(`${JSON.stringify({ event: 'ready', pid: process.pid })}\n`);

const stop = () => {
  worker
    .close()
    .then(() => process.exit(0))
    .catch(() => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
