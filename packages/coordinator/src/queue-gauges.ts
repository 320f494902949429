import type { Dispatcher } from './dispatcher.ts';
import { refreshFlowGauges } from './flow/flow-gauges.ts';

/** `toolq_approvals_pending{tool}`: the fleet's figure, from Redis (approval-store.ts). */
async function refreshApprovalGauges(dispatcher: Dispatcher): Promise<void> {
  const counts = await dispatcher.approvals.store.pendingByTool(Date.now());
  dispatcher.metrics.approvalsPending.reset();
  for (const [tool, n] of counts) dispatcher.metrics.approvalsPending.set({ tool }, n);
}

const STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/**
 * Sets `toolq_queue_jobs{pool,state}`, `toolq_workers{pool}` and `toolq_pool_waits_for_workers{pool}`
 * just before a scrape.
 */
export async function refreshGauges(dispatcher: Dispatcher): Promise<void> {
  const { metrics, catalog } = dispatcher;
  const workersByPool = new Map<string, number>();
  for (const worker of catalog.liveWorkers())
    workersByPool.set(worker.pool, (workersByPool.get(worker.pool) ?? 0) + 1);
  const tools = catalog.list();
  const pools = new Set([...workersByPool.keys(), ...tools.flatMap((t) => t.pools)]);
  // A pool at zero by design (its calls wait for KEDA to start a worker) is told apart from one
  // whose workers died, so ToolqNoLiveWorkers can leave the first alone.
  const waitingPools = new Set(tools.filter((t) => t.waitsForWorkers).flatMap((t) => t.pools));
  metrics.workers.reset();
  metrics.waitsForWorkers.reset();
  for (const pool of pools) {
    metrics.workers.set({ pool }, workersByPool.get(pool) ?? 0);
    metrics.waitsForWorkers.set({ pool }, waitingPools.has(pool) ? 1 : 0);
  }
  await Promise.all([
    refreshFlowGauges(dispatcher),
    refreshApprovalGauges(dispatcher),
    ...[...pools].map(async (pool) => {
      // A pool's jobs wait in its own queue and, while its workers differ, in their lanes.
      const all = await Promise.all(
        [pool, ...catalog.lanesOf(pool)].map((queue) => dispatcher.queueFor(queue).getJobCounts(...STATES)),
      );
      for (const state of STATES)
        metrics.queueJobs.set(
          { pool, state },
          all.reduce((sum, counts) => sum + (counts[state] ?? 0), 0),
        );
    }),
  ]);
}
