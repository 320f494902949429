/** The admin page's entries for flow-controlled tools' queues, named with the limits in force. */
import { flowRoute } from '@toolq/shared/internal';
import type { Catalog } from '../catalog.ts';

export function flowAdminQueues(
  catalog: Catalog,
): { queue: string; displayName: string; description: string }[] {
  const specs = new Map(catalog.list().map((t) => [t.name, t] as const));
  const tools = new Set([
    ...[...specs.values()].filter((t) => catalog.flow.isFlowControlled(t)).map((t) => t.name),
    ...catalog.flow.namedTools(),
  ]);
  return [...tools].sort().map((tool) => {
    const limits = catalog.flow.limitsOf(specs.get(tool) ?? { name: tool });
    const parts = [
      limits.concurrency !== null ? `cap ${limits.concurrency}` : 'no cap',
      limits.rateLimit ? `${limits.rateLimit.max} per ${limits.rateLimit.perMs} ms` : 'no rate limit',
      ...(limits.paused ? ['PAUSED'] : []),
    ];
    return {
      queue: flowRoute(tool),
      displayName: `tool ${tool} (${parts.join(', ')})`,
      description:
        `The fleet-wide queue of flow-controlled tool ${tool}: ${parts.join(', ')}. Change limits and pause ` +
        `with PUT /v1/tools/${tool}/limits and POST /v1/tools/${tool}/pause|resume (docs/flow-control.md).`,
    };
  });
}
