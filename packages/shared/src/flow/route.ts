import { TOOL_NAME_PATTERN } from '../tool.ts';

/**
 * The route (queue) of a flow-controlled tool: one queue per tool for the whole fleet, whichever
 * pool serves it, so that BullMQ's queue-level cap and hold are the tool's. `=` cannot be in a pool
 * name (KEY_PART_PATTERN), so no pool or lane is ever taken for it.
 */
const FLOW_ROUTE_PREFIX = 'tool=';
export function flowRoute(tool: string): string {
  if (!TOOL_NAME_PATTERN.test(tool)) throw new Error(`not a tool name: ${JSON.stringify(tool)}`);
  return `${FLOW_ROUTE_PREFIX}${tool}`;
}

/** The tool whose queue a route is, or undefined for a pool or a lane. */
export function toolOfRoute(route: string): string | undefined {
  if (!route.startsWith(FLOW_ROUTE_PREFIX)) return undefined;
  const tool = route.slice(FLOW_ROUTE_PREFIX.length);
  return TOOL_NAME_PATTERN.test(tool) ? tool : undefined;
}

/** Whether a BullMQ queue name (`{<route>}`, keys.ts queueName) is a tool's queue; no allocation. */
export function isToolQueueName(queueName: string): boolean {
  return queueName.startsWith(FLOW_ROUTE_PREFIX, 1) && queueName.startsWith('{');
}
