/** How much each benchmark does: the full run, `--quick` (CI smoke, under a minute) and a tiny one for tests. */
import type { OverheadConfig, StartupConfig } from './barrier-overhead.ts';
import type { CompetitorConfig } from './competitor.ts';
import type { EarlyDispatchConfig } from './early-dispatch.ts';
import type { FlowConfig } from './flow.ts';
import type { HttpConfig } from './http-vs-library.ts';
import type { MemoryConfig } from './memory.ts';
import type { ThroughputConfig } from './throughput.ts';

export type Mode = 'full' | 'quick' | 'tiny';

export interface BenchConfig {
  mode: Mode;
  /** Jobs one worker process runs at once, toolq and plain alike. */
  concurrency: number;
  /** Worker processes of each kind while latency is measured (benchmarks 1, 3 and 4). */
  latencyWorkers: number;
  startup: StartupConfig;
  overhead: OverheadConfig;
  throughput: ThroughputConfig;
  competitor: CompetitorConfig;
  earlyDispatch: EarlyDispatchConfig;
  memory: MemoryConfig;
  http: HttpConfig;
  flow: FlowConfig;
}

const scenarios: EarlyDispatchConfig['scenarios'] = [
  { name: '4 calls × 400 ms, blocks 200 ms apart', sleepsMs: [400, 400, 400, 400], gapMs: 200 },
  { name: '4 calls 800/600/400/200 ms, blocks 200 ms apart', sleepsMs: [800, 600, 400, 200], gapMs: 200 },
];

export const FULL: BenchConfig = {
  mode: 'full',
  concurrency: 64,
  latencyWorkers: 2,
  startup: { calls: 2_000, batchSize: 10, lostTimeoutMs: 5_000 },
  overhead: {
    batchSizes: [1, 10, 50, 100],
    iterations: { 1: 1_000, 10: 1_000, 50: 300, 100: 200 },
    warmup: 20,
    block: 10,
    lostTimeoutMs: 5_000,
  },
  throughput: { workerCounts: [1, 2, 4], callsPerRun: 10_000, batchSize: 10, runs: 3, timeoutMs: 60_000 },
  competitor: { calls: 9, sleepMs: 500, iterations: 20, lostTimeoutMs: 10_000 },
  earlyDispatch: { scenarios, iterations: 5 },
  memory: { batches: 10_000, sleepMs: 8_000, workers: 2 },
  http: { batchSizes: [1, 10], iterations: { 1: 1_000, 10: 1_000 }, warmup: 30, block: 10, timeoutMs: 5_000 },
  flow: { overheadIterations: 300, capCalls: 150, callMs: 200, rateCalls: 16 },
};

export const QUICK: BenchConfig = {
  mode: 'quick',
  concurrency: 64,
  latencyWorkers: 2,
  startup: { calls: 500, batchSize: 10, lostTimeoutMs: 2_000 },
  overhead: {
    batchSizes: [1, 10, 50, 100],
    iterations: { 1: 40, 10: 40, 50: 20, 100: 15 },
    warmup: 5,
    block: 10,
    lostTimeoutMs: 2_000,
  },
  throughput: { workerCounts: [1, 2, 4], callsPerRun: 1_000, batchSize: 10, runs: 1, timeoutMs: 30_000 },
  competitor: { calls: 9, sleepMs: 500, iterations: 2, lostTimeoutMs: 5_000 },
  earlyDispatch: { scenarios, iterations: 1 },
  memory: { batches: 2_000, sleepMs: 3_000, workers: 2 },
  http: { batchSizes: [1, 10], iterations: { 1: 100, 10: 100 }, warmup: 10, block: 10, timeoutMs: 5_000 },
  flow: { overheadIterations: 60, capCalls: 60, callMs: 200, rateCalls: 12 },
};

/** The code paths of --quick at the smallest size that still exercises them (tests). */
export const TINY: BenchConfig = {
  mode: 'tiny',
  concurrency: 32,
  latencyWorkers: 1,
  startup: { calls: 50, batchSize: 10, lostTimeoutMs: 2_000 },
  overhead: { batchSizes: [1, 10], iterations: { 1: 5, 10: 5 }, warmup: 1, block: 5, lostTimeoutMs: 2_000 },
  throughput: { workerCounts: [1, 2], callsPerRun: 200, batchSize: 10, runs: 1, timeoutMs: 20_000 },
  competitor: { calls: 9, sleepMs: 100, iterations: 1, lostTimeoutMs: 5_000 },
  earlyDispatch: {
    scenarios: [{ name: '3 calls 300/200/100 ms, blocks 50 ms apart', sleepsMs: [300, 200, 100], gapMs: 50 }],
    iterations: 1,
  },
  memory: { batches: 200, sleepMs: 1_500, workers: 1 },
  http: { batchSizes: [1, 10], iterations: { 1: 5, 10: 5 }, warmup: 1, block: 5, timeoutMs: 5_000 },
  flow: { overheadIterations: 3, capCalls: 9, callMs: 20, rateCalls: 5 },
};
