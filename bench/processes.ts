/**
 * The processes a benchmark run owns: one redis-server, toolq worker processes (the real CLI) and
 * plain BullMQ worker processes (bench/plain-worker.ts), all children of this process.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { waitForReadyLine } from '../test-support/ready-line.ts';
import { type RedisServer, startRedisServer } from '../test-support/redis-server.ts';
import { RUN_SOURCES } from '../test-support/run-sources.ts';
import { stopChild } from '../test-support/stop-child.ts';
import { startWorkerProcess, type WorkerProcess } from '../test-support/worker-process.ts';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const PLAIN_WORKER = fileURLToPath(new URL('./plain-worker.ts', import.meta.url));

/** Where the plain BullMQ baseline lives in the same Redis (its own prefix, so nothing is shared). */
export const PLAIN_PREFIX = 'plainbench';
export const PLAIN_QUEUE = 'tools';

export interface ChildWorker {
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

export async function startToolqWorker(options: {
  redisUrl: string;
  concurrency: number;
  prefix?: string;
}): Promise<ChildWorker> {
  const worker: WorkerProcess = await startWorkerProcess({
    redisUrl: options.redisUrl,
    concurrency: options.concurrency,
    tools: 'diagnostics',
    env: { TOOLQ_LOG_LEVEL: process.env.TOOLQ_BENCH_LOG_LEVEL ?? 'warn' },
    ...(options.prefix ? { prefix: options.prefix } : {}),
  });
  return { pid: worker.child.pid, stop: async () => void (await worker.stop()) };
}

export async function startPlainWorker(options: {
  redisUrl: string;
  concurrency: number;
}): Promise<ChildWorker> {
  const child = spawn(
    process.execPath,
    [...RUN_SOURCES, PLAIN_WORKER, options.redisUrl, PLAIN_QUEUE, PLAIN_PREFIX, String(options.concurrency)],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitForReadyLine(child, exited, 'plain BullMQ worker', 60_000);
  return { pid: child.pid, stop: async () => void (await stopChild(child)) };
}

/** A set of worker processes of one kind that can grow to a given count. */
export class WorkerSet {
  readonly workers: ChildWorker[] = [];
  constructor(private readonly start: () => Promise<ChildWorker>) {}

  get size(): number {
    return this.workers.length;
  }

  /** Starts processes until there are `count` (never stops any). */
  async growTo(count: number): Promise<void> {
    const missing = Math.max(0, count - this.workers.length);
    const started = await Promise.all(Array.from({ length: missing }, () => this.start()));
    this.workers.push(...started);
  }

  async stopAll(): Promise<void> {
    const all = this.workers.splice(0);
    await Promise.all(all.map((w) => w.stop().catch(() => undefined)));
  }
}

export interface BenchProcesses {
  redis: RedisServer;
  /** redis-server's pid (from INFO server). */
  redisPid: number | undefined;
  toolq: WorkerSet;
  plain: WorkerSet;
  stop(): Promise<void>;
}

export async function startBenchProcesses(options: { concurrency: number }): Promise<BenchProcesses> {
  const redis = await startRedisServer();
  const client = new Redis(redis.url);
  const info = await client.info('server');
  client.disconnect();
  const redisPid = Number(/^process_id:(\d+)/m.exec(info)?.[1]) || undefined;
  const toolq = new WorkerSet(() =>
    startToolqWorker({ redisUrl: redis.url, concurrency: options.concurrency }),
  );
  const plain = new WorkerSet(() =>
    startPlainWorker({ redisUrl: redis.url, concurrency: options.concurrency }),
  );
  return {
    redis,
    redisPid,
    toolq,
    plain,
    stop: async () => {
      await Promise.all([toolq.stopAll(), plain.stopAll()]);
      await redis.stop();
    },
  };
}
