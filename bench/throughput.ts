/**
 * Benchmark 2: throughput. `callsPerRun` no-op calls are submitted at once, in batches of
 * `batchSize`, and the clock stops when the last one is answered; toolq through the Dispatcher,
 * raw BullMQ as bare jobs (removed on completion, nobody waiting for results) served by the same
 * number of plain worker processes. The bench Redis is profiled around every run.
 */
import type { Dispatcher } from '@toolq/coordinator';
import { withCpu } from './cpu.ts';
import { rawBullmqRun, sleep } from './plain-barrier.ts';
import { type RedisCost, withRedisCost } from './redis-profile.ts';
import { type Summary, summarize } from './stats.ts';
import { echoBatch, runToolq } from './toolq-runner.ts';

export interface ThroughputConfig {
  workerCounts: number[];
  callsPerRun: number;
  batchSize: number;
  /** Measured runs per system and worker count (toolq and raw take turns). */
  runs: number;
  timeoutMs: number;
}

export interface ThroughputRow {
  workers: number;
  system: 'toolq' | 'raw';
  /** calls/s of each run. */
  rates: number[];
  /** toolq only: dispatch → answer of every call, under saturation. */
  latency?: Summary;
  calls: number;
  lost: number;
  errors: number;
  /** redis-server CPU per call (INFO cpu), averaged over the runs. */
  redisCpuUsec: number;
  redisTop: RedisCost['top'];
  /** CPU µs per call of each process group (client = this process, workers, redis), averaged over the runs. */
  cpuUsec: { client: number; workers: number; redis: number };
}

export interface ThroughputPids {
  toolq: (number | undefined)[];
  plain: (number | undefined)[];
  redis: number | undefined;
}

export async function measureThroughputAt(
  workers: number,
  ctx: { redisUrl: string; dispatcher: Dispatcher; pids: ThroughputPids },
  cfg: ThroughputConfig,
): Promise<ThroughputRow[]> {
  const batches = Math.max(1, Math.ceil(cfg.callsPerRun / cfg.batchSize));
  const calls = batches * cfg.batchSize;

  const toolqRun = async () => {
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: batches }, (_, b) =>
        runToolq(ctx.dispatcher, echoBatch(cfg.batchSize, b), cfg.timeoutMs),
      ),
    );
    const elapsedMs = performance.now() - t0;
    return {
      elapsedMs,
      lost: results.reduce((n, r) => n + r.lost, 0),
      errors: results.reduce((n, r) => n + r.errors, 0),
      latencies: results.flatMap((r) => r.latenciesMs),
    };
  };
  const rawRun = async () => {
    const r = await rawBullmqRun(ctx.redisUrl, calls, cfg.batchSize);
    return { elapsedMs: r.elapsedMs, lost: 0, errors: calls - r.completed, latencies: [] as number[] };
  };

  // Warm-up: JIT, connections, Redis script cache.
  await toolqRun();
  await rawRun();

  const fresh = () => ({
    rates: [] as number[],
    latencies: [] as number[],
    lost: 0,
    errors: 0,
    cpu: 0,
    top: [] as RedisCost['top'],
    proc: { client: 0, workers: 0, redis: 0 },
  });
  const acc = { toolq: fresh(), raw: fresh() };
  for (let run = 0; run < cfg.runs; run++) {
    const order = run % 2 === 0 ? (['toolq', 'raw'] as const) : (['raw', 'toolq'] as const);
    for (const system of order) {
      // Let the previous run's trailing work (trims, answered marks) finish first.
      await sleep(200);
      const groups = {
        client: [process.pid],
        workers: system === 'toolq' ? ctx.pids.toolq : ctx.pids.plain,
        redis: [ctx.pids.redis],
      };
      const {
        result: { result, cost },
        cpuMs,
      } = await withCpu(groups, () => withRedisCost(ctx.redisUrl, system === 'toolq' ? toolqRun : rawRun));
      const a = acc[system];
      for (const g of ['client', 'workers', 'redis'] as const)
        a.proc[g] += ((cpuMs[g] ?? Number.NaN) * 1000) / calls;
      a.rates.push((calls / result.elapsedMs) * 1000);
      a.latencies.push(...result.latencies);
      a.lost += result.lost;
      a.errors += result.errors;
      a.cpu += cost.cpuUsec / calls;
      a.top = cost.top;
    }
  }
  return (['toolq', 'raw'] as const).map((system) => {
    const a = acc[system];
    const row: ThroughputRow = {
      workers,
      system,
      rates: a.rates,
      calls,
      lost: a.lost,
      errors: a.errors,
      redisCpuUsec: a.cpu / cfg.runs,
      redisTop: a.top,
      cpuUsec: {
        client: a.proc.client / cfg.runs,
        workers: a.proc.workers / cfg.runs,
        redis: a.proc.redis / cfg.runs,
      },
    };
    if (system === 'toolq') row.latency = summarize(a.latencies);
    return row;
  });
}
