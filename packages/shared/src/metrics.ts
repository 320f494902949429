/**
 * The metric contract: one table of every toolq metric (name, type, labels, help, who exports it).
 * The registries below are built from it, deploy/'s dashboard and alert tests check their queries
 * against it, and the end-to-end test checks that the running processes export exactly it. Each
 * process makes its own Registry (no global state), so tests can run several in one process.
 */
export type { Registry } from 'prom-client';

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDefinition {
  readonly type: MetricType;
  readonly labels: readonly string[];
  readonly help: string;
  /** The process kind that exports it. */
  readonly component: 'coordinator' | 'worker';
  readonly buckets?: readonly number[];
}

/** Seconds; from sub-millisecond overheads up to long tool calls. */
const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
] as const;

export const METRICS = {
  toolq_tool_calls_total: {
    type: 'counter',
    labels: ['tool', 'pool', 'outcome'],
    help: 'Tool calls answered to the caller, by final outcome',
    component: 'coordinator',
  },
  toolq_batch_size: {
    type: 'histogram',
    labels: [],
    help: 'Tool calls per batch',
    component: 'coordinator',
    buckets: [1, 2, 3, 5, 8, 13, 21, 50, 100, 250, 1000],
  },
  toolq_batch_duration_seconds: {
    type: 'histogram',
    labels: [],
    help: 'Wall time of a batch, dispatch to answer',
    component: 'coordinator',
    buckets: LATENCY_BUCKETS,
  },
  toolq_batch_overhead_seconds: {
    type: 'histogram',
    labels: [],
    help: 'Wall time of a batch minus its slowest call run time',
    component: 'coordinator',
    buckets: LATENCY_BUCKETS,
  },
  toolq_late_results_total: {
    type: 'counter',
    labels: [],
    help: 'Results that arrived after their batch was answered (dropped)',
    component: 'coordinator',
  },
  toolq_lost_calls_total: {
    type: 'counter',
    labels: ['pool', 'action'],
    help: 'Calls Redis lost (a failover or a restart without persistence): re-run (tools that may run twice) or answered as errors',
    component: 'coordinator',
  },
  toolq_queue_jobs: {
    type: 'gauge',
    labels: ['pool', 'state'],
    help: 'Jobs in a pool queue by state',
    component: 'coordinator',
  },
  toolq_workers: {
    type: 'gauge',
    labels: ['pool'],
    help: 'Live worker processes by pool (heartbeat seen recently)',
    component: 'coordinator',
  },
  toolq_pool_waits_for_workers: {
    type: 'gauge',
    labels: ['pool'],
    help: 'Whether a pool may scale to zero (its workers run with TOOLQ_WAIT_FOR_WORKERS): 1, or 0',
    component: 'coordinator',
  },
  toolq_model_tokens_total: {
    type: 'counter',
    labels: ['model', 'role', 'kind'],
    help: 'Model tokens used by the agent loop',
    component: 'coordinator',
  },
  toolq_worker_jobs_total: {
    type: 'counter',
    labels: ['tool', 'pool', 'outcome'],
    help: 'Tool calls a worker finished, by outcome (the coordinator counts the final answer in toolq_tool_calls_total)',
    component: 'worker',
  },
  toolq_tool_duration_seconds: {
    type: 'histogram',
    labels: ['tool', 'pool'],
    help: 'Run time of a tool call on its worker, including retries',
    component: 'worker',
    buckets: LATENCY_BUCKETS,
  },
  toolq_tool_queue_wait_seconds: {
    type: 'histogram',
    labels: ['pool'],
    help: 'Time from enqueue to the start of the call on a worker',
    component: 'worker',
    buckets: LATENCY_BUCKETS,
  },
  toolq_worker_skipped_jobs_total: {
    type: 'counter',
    labels: ['pool', 'reason'],
    help: 'Jobs not run because their batch was already answered, their deadline passed or they were delivered twice',
    component: 'worker',
  },
  toolq_flow_throttled_total: {
    type: 'counter',
    labels: ['tool', 'reason'],
    help: 'Starts of flow-controlled calls refused: rate_limit (the sliding window was full), downstream (the tool threw RateLimitedError), paused (an operator or a downstream hold)',
    component: 'worker',
  },
  toolq_flow_slot_wait_seconds: {
    type: 'histogram',
    labels: ['tool'],
    help: 'Time a flow-controlled call waited for a slot: from enqueue to its admitted start',
    component: 'worker',
    buckets: LATENCY_BUCKETS,
  },
  toolq_flow_calls: {
    type: 'gauge',
    labels: ['tool', 'state'],
    help: "Calls of a flow-controlled tool in its queue: active (running, a dead worker's until it is known dead) and waiting",
    component: 'coordinator',
  },
  toolq_flow_concurrency_limit: {
    type: 'gauge',
    labels: ['tool'],
    help: 'The fleet-wide cap in force for a flow-controlled tool (0: none)',
    component: 'coordinator',
  },
  toolq_flow_paused: {
    type: 'gauge',
    labels: ['tool'],
    help: 'Whether an operator paused the tool: 1, or 0',
    component: 'coordinator',
  },
  toolq_cache_calls_total: {
    type: 'counter',
    labels: ['tool', 'result'],
    help: 'Calls of tools with a cache: hit (a stored result), miss (ran), coalesced (waited for an identical call running)',
    component: 'worker',
  },
  toolq_approvals_pending: {
    type: 'gauge',
    labels: ['tool'],
    help: 'Calls waiting for a person to approve them, fleet-wide (read from Redis: every coordinator reports the same figure), by tool',
    component: 'coordinator',
  },
  toolq_approvals_decided_total: {
    type: 'counter',
    labels: ['tool', 'status'],
    help: 'Approvals ended, by how: approved, denied, expired, cancelled (counted once, by the coordinator that acted on it)',
    component: 'coordinator',
  },
  toolq_interrupted_calls_total: {
    type: 'counter',
    labels: ['pool', 'action'],
    help: 'Calls of workers found dead (heartbeat stopped): rerun (at-least-once) or answered outcome unknown (at-most-once, started)',
    component: 'coordinator',
  },
} as const satisfies Record<string, MetricDefinition>;

export type MetricName = keyof typeof METRICS;

/** Closed label value sets: a dashboard or alert matching another value is a bug. */
export const METRIC_LABEL_VALUES: Readonly<Record<string, readonly string[]>> = {
  outcome: ['ok', 'error', 'timeout', 'invalid_input', 'unknown_tool', 'cancelled', 'not_started', 'unknown'],
  state: ['waiting', 'active', 'delayed', 'failed'],
  reason: ['already_answered', 'deadline_passed', 'duplicate_delivery', 'rate_limit', 'downstream', 'paused'],
  action: ['rerun', 'error', 'unknown'],
  result: ['hit', 'miss', 'coalesced'],
  status: ['approved', 'denied', 'expired', 'cancelled'],
};

/** Process metrics (prom-client's defaults) carry this prefix; they are not part of the table. */
export const PROCESS_METRIC_PREFIX = 'toolq_process_';

export function createRegistry(options: { defaultMetrics?: boolean; labels?: Record<string, string> } = {}) {
  const registry = new Registry();
  if (options.labels) registry.setDefaultLabels(options.labels);
  if (options.defaultMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: PROCESS_METRIC_PREFIX });
  return registry;
}

type LabelsOf<N extends MetricName> = (typeof METRICS)[N]['labels'][number];

function counter<N extends MetricName>(registry: Registry, name: N): Counter<LabelsOf<N>> {
  const def: MetricDefinition = METRICS[name];
  return new Counter({
    name,
    help: def.help,
    labelNames: def.labels as LabelsOf<N>[],
    registers: [registry],
  });
}
function gauge<N extends MetricName>(registry: Registry, name: N): Gauge<LabelsOf<N>> {
  const def: MetricDefinition = METRICS[name];
  return new Gauge({ name, help: def.help, labelNames: def.labels as LabelsOf<N>[], registers: [registry] });
}
function histogram<N extends MetricName>(registry: Registry, name: N): Histogram<LabelsOf<N>> {
  const def: MetricDefinition = METRICS[name];
  return new Histogram({
    name,
    help: def.help,
    labelNames: def.labels as LabelsOf<N>[],
    ...(def.buckets ? { buckets: [...def.buckets] } : {}),
    registers: [registry],
  });
}

export function createWorkerMetrics(registry: Registry) {
  return {
    jobs: counter(registry, 'toolq_worker_jobs_total'),
    duration: histogram(registry, 'toolq_tool_duration_seconds'),
    queueWait: histogram(registry, 'toolq_tool_queue_wait_seconds'),
    skipped: counter(registry, 'toolq_worker_skipped_jobs_total'),
    flowThrottled: counter(registry, 'toolq_flow_throttled_total'),
    flowSlotWait: histogram(registry, 'toolq_flow_slot_wait_seconds'),
    cache: counter(registry, 'toolq_cache_calls_total'),
  };
}
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

export function createCoordinatorMetrics(registry: Registry) {
  return {
    calls: counter(registry, 'toolq_tool_calls_total'),
    batchSize: histogram(registry, 'toolq_batch_size'),
    batchDuration: histogram(registry, 'toolq_batch_duration_seconds'),
    batchOverhead: histogram(registry, 'toolq_batch_overhead_seconds'),
    lateResults: counter(registry, 'toolq_late_results_total'),
    lostCalls: counter(registry, 'toolq_lost_calls_total'),
    queueJobs: gauge(registry, 'toolq_queue_jobs'),
    workers: gauge(registry, 'toolq_workers'),
    waitsForWorkers: gauge(registry, 'toolq_pool_waits_for_workers'),
    modelTokens: counter(registry, 'toolq_model_tokens_total'),
    flowCalls: gauge(registry, 'toolq_flow_calls'),
    flowConcurrency: gauge(registry, 'toolq_flow_concurrency_limit'),
    flowPaused: gauge(registry, 'toolq_flow_paused'),
    interrupted: counter(registry, 'toolq_interrupted_calls_total'),
    approvalsPending: gauge(registry, 'toolq_approvals_pending'),
    approvalsDecided: counter(registry, 'toolq_approvals_decided_total'),
  };
}
export type CoordinatorMetrics = ReturnType<typeof createCoordinatorMetrics>;
