import type { Dispatcher } from './dispatcher.ts';

const STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/** Sets `toolq_queue_jobs{pool,state}` and `toolq_workers{pool}` just before a scrape. */
export async function refreshGauges(dispatcher: Dispatcher): Promise<void> {
  const { metrics, catalog } = dispatcher;
  const workersByPool = new Map<string, number>();
  for (const worker of catalog.liveWorkers())
    workersByPool.set(worker.pool, (workersByPool.get(worker.pool) ?? 0) + 1);
  const pools = new Set([...workersByPool.keys(), ...catalog.list().flatMap((t) => t.pools)]);
  metrics.workers.reset();
  for (const pool of pools) metrics.workers.set({ pool }, workersByPool.get(pool) ?? 0);
  await Promise.all(
    [...pools].map(async (pool) => {
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
  );
}
