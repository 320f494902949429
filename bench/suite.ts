/**
 * Runs every benchmark in one process tree: its own redis-server, toolq and plain BullMQ worker
 * processes, the coordinator in this process (and a child for the memory benchmark).
 */
import { loadavg } from 'node:os';
import { Dispatcher } from '@toolq/coordinator';
import { createLogger } from '@toolq/shared';
import {
  type Clients,
  measureOverhead,
  measureStartup,
  type OverheadRow,
  type StartupResult,
} from './barrier-overhead.ts';
import { type CompetitorRow, measureCompetitor } from './competitor.ts';
import type { BenchConfig } from './config.ts';
import { type EarlyDispatchRow, loadRunAgent, measureEarlyDispatch } from './early-dispatch.ts';
import { collectEnvironment, type Environment } from './environment.ts';
import { type FlowResult, measureFlow } from './flow.ts';
import { type HttpResult, measureHttpVsLibrary } from './http-vs-library.ts';
import { type MemoryResult, measureMemory } from './memory.ts';
import { startBenchProcesses } from './processes.ts';
import { measureThroughputAt, type ThroughputRow } from './throughput.ts';

export interface SuiteResult {
  config: BenchConfig;
  command: string;
  env: Environment;
  loadAverageEnd: number[];
  durationMs: number;
  startup: StartupResult;
  overhead: OverheadRow[];
  throughput: ThroughputRow[];
  competitor: CompetitorRow[];
  /** Rows, or why the benchmark could not run. */
  earlyDispatch: EarlyDispatchRow[] | { notDone: string };
  memory: MemoryResult;
  http: HttpResult;
  flow: FlowResult;
}

export type Progress = (message: string) => void;

export async function runSuite(
  config: BenchConfig,
  command: string,
  progress: Progress = () => undefined,
): Promise<SuiteResult> {
  const started = performance.now();
  const env = collectEnvironment();
  const logger = createLogger({
    name: 'toolq-bench',
    level: (process.env.TOOLQ_BENCH_LOG_LEVEL as 'warn') ?? 'warn',
  });
  const step = (message: string) =>
    progress(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${message}`);

  step('starting redis-server');
  const procs = await startBenchProcesses({ concurrency: config.concurrency });
  const redisUrl = procs.redis.url;
  let clients: Clients | undefined;
  const throughputDispatcher = new Dispatcher({ redisUrl, logger });
  try {
    const counts = [...new Set(config.throughput.workerCounts)].sort((a, b) => a - b);
    const grow = async (n: number) => {
      if (procs.toolq.size >= n && procs.plain.size >= n) return;
      step(`starting worker processes: ${n} toolq + ${n} plain BullMQ`);
      await Promise.all([procs.toolq.growTo(n), procs.plain.growTo(n)]);
    };
    await grow(Math.min(counts[0] ?? 1, config.latencyWorkers));
    await throughputDispatcher.start();

    const throughput: ThroughputRow[] = [];
    const throughputAt = async (n: number) => {
      await grow(n);
      step(`throughput with ${n} worker process(es) of each kind`);
      const pids = {
        toolq: procs.toolq.workers.map((w) => w.pid),
        plain: procs.plain.workers.map((w) => w.pid),
        redis: procs.redisPid,
      };
      throughput.push(
        ...(await measureThroughputAt(
          n,
          { redisUrl, dispatcher: throughputDispatcher, pids },
          config.throughput,
        )),
      );
    };
    for (const n of counts.filter((c) => c <= config.latencyWorkers)) await throughputAt(n);

    await grow(config.latencyWorkers);
    step(`start-up burst: ${config.startup.calls} calls right after the clients are created`);
    const measured = await measureStartup(redisUrl, config.startup, logger);
    clients = measured.clients;
    step('barrier overhead');
    const overhead = await measureOverhead(clients, config.overhead);
    step('competitor scenario');
    const competitor = await measureCompetitor(clients, config.competitor);
    step('streaming early dispatch');
    const runAgent = await loadRunAgent();
    const earlyDispatch = runAgent
      ? await measureEarlyDispatch(clients.dispatcher, runAgent, config.earlyDispatch, logger)
      : { notDone: 'runAgent (packages/coordinator/src/agent) does not exist in this checkout yet.' };
    step('HTTP front door vs the library');
    const http = await measureHttpVsLibrary(redisUrl, clients.dispatcher, config.http);

    step('flow control: cost per call, cap utilisation, rate window');
    const flow = await measureFlow(redisUrl, config.flow, logger);

    for (const n of counts.filter((c) => c > config.latencyWorkers)) await throughputAt(n);

    await clients.dispatcher.close();
    await clients.plain.close();
    clients = undefined;
    await throughputDispatcher.close();
    step('stopping the benchmark workers');
    await Promise.all([procs.toolq.stopAll(), procs.plain.stopAll()]);
    step(`memory and scale: ${config.memory.batches} batches in flight`);
    const memory = await measureMemory(redisUrl, config.memory);
    step('done');
    return {
      config,
      command,
      env,
      loadAverageEnd: loadavg().map((x) => Math.round(x * 100) / 100),
      durationMs: performance.now() - started,
      startup: measured.startup,
      overhead,
      throughput,
      competitor,
      earlyDispatch,
      memory,
      http,
      flow,
    };
  } finally {
    await clients?.dispatcher.close().catch(() => undefined);
    await clients?.plain.close().catch(() => undefined);
    await throughputDispatcher.close().catch(() => undefined);
    await procs.stop();
  }
}
