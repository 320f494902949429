/**
 * Metric definitions shared by name with the dashboards and alerts in deploy/. Each process makes
 * its own Registry (no global state), so tests can run several in one process.
 */
export type { Registry } from 'prom-client';

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds; from sub-millisecond overheads up to long tool calls. */
const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

export function createRegistry(options: { defaultMetrics?: boolean; labels?: Record<string, string> } = {}) {
  const registry = new Registry();
  if (options.labels) registry.setDefaultLabels(options.labels);
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'toolq_process_' });
  return registry;
}

export function createWorkerMetrics(registry: Registry) {
  return {
    jobs: new Counter({
      name: 'toolq_worker_jobs_total',
      help: 'Tool calls a worker finished, by outcome (the coordinator counts the final answer in toolq_tool_calls_total)',
      labelNames: ['tool', 'pool', 'outcome'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'toolq_tool_duration_seconds',
      help: 'Run time of a tool call on its worker, including retries',
      labelNames: ['tool', 'pool'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'toolq_tool_queue_wait_seconds',
      help: 'Time from enqueue to the start of the call on a worker',
      labelNames: ['pool'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    skipped: new Counter({
      name: 'toolq_worker_skipped_jobs_total',
      help: 'Jobs not run because their batch was already answered, their deadline passed or they were delivered twice',
      labelNames: ['pool', 'reason'] as const,
      registers: [registry],
    }),
  };
}
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

export function createCoordinatorMetrics(registry: Registry) {
  return {
    calls: new Counter({
      name: 'toolq_tool_calls_total',
      help: 'Tool calls answered to the caller, by final outcome',
      labelNames: ['tool', 'pool', 'outcome'] as const,
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'toolq_batch_size',
      help: 'Tool calls per batch',
      buckets: [1, 2, 3, 5, 8, 13, 21, 50, 100, 250, 1000],
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'toolq_batch_duration_seconds',
      help: 'Wall time of a batch, dispatch to answer',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    batchOverhead: new Histogram({
      name: 'toolq_batch_overhead_seconds',
      help: 'Wall time of a batch minus its slowest call run time',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    lateResults: new Counter({
      name: 'toolq_late_results_total',
      help: 'Results that arrived after their batch was answered (dropped)',
      registers: [registry],
    }),
    queueJobs: new Gauge({
      name: 'toolq_queue_jobs',
      help: 'Jobs in a pool queue by state',
      labelNames: ['pool', 'state'] as const,
      registers: [registry],
    }),
    workers: new Gauge({
      name: 'toolq_workers',
      help: 'Live worker processes by pool (heartbeat seen recently)',
      labelNames: ['pool'] as const,
      registers: [registry],
    }),
    modelTokens: new Counter({
      name: 'toolq_model_tokens_total',
      help: 'Model tokens used by the agent loop',
      labelNames: ['model', 'role', 'kind'] as const,
      registers: [registry],
    }),
  };
}
export type CoordinatorMetrics = ReturnType<typeof createCoordinatorMetrics>;
