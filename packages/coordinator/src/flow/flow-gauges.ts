/** The flow-control gauges, set just before a scrape (queue-gauges.ts): per flow-controlled tool. */
import { flowRoute } from '@toolq/shared/internal';
import type { Dispatcher } from '../dispatcher.ts';

export async function refreshFlowGauges(
  dispatcher: Pick<Dispatcher, 'catalog' | 'metrics' | 'queueFor'>,
): Promise<void> {
  const { catalog, metrics } = dispatcher;
  const specs = new Map(catalog.list().map((t) => [t.name, t] as const));
  const tools = new Set([
    ...[...specs.values()].filter((t) => catalog.flow.isFlowControlled(t)).map((t) => t.name),
    ...catalog.flow.namedTools(),
  ]);
  metrics.flowCalls.reset();
  metrics.flowConcurrency.reset();
  metrics.flowPaused.reset();
  await Promise.all(
    [...tools].map(async (tool) => {
      const limits = catalog.flow.limitsOf(specs.get(tool) ?? { name: tool });
      // `prioritized`: BullMQ keeps calls with a priority (every fair-shared call) apart from `wait`.
      const counts = await dispatcher
        .queueFor(flowRoute(tool))
        .getJobCounts('active', 'waiting', 'prioritized');
      metrics.flowCalls.set({ tool, state: 'active' }, counts.active ?? 0);
      metrics.flowCalls.set({ tool, state: 'waiting' }, (counts.waiting ?? 0) + (counts.prioritized ?? 0));
      metrics.flowConcurrency.set({ tool }, limits.concurrency ?? 0);
      metrics.flowPaused.set({ tool }, limits.paused ? 1 : 0);
    }),
  );
}
