/** Per-server metrics of the MCP servers a worker hosts (on the worker's registry, beside its own). */
import type { Registry } from '@toolq/shared/internal';
import { Counter, Gauge } from 'prom-client';

export const CONNECTION_STATES = ['connecting', 'connected', 'reconnecting', 'failed', 'closed'] as const;
export type ConnectionState = (typeof CONNECTION_STATES)[number];

/** Why a connection went down; a bounded label set. */
export type FailureReason = 'spawn_failed' | 'exited' | 'initialize_failed' | 'session_lost' | 'unreachable';

export function createMcpMetrics(registry: Registry) {
  return {
    state: new Gauge({
      name: 'toolq_mcp_server_state',
      help: 'Connection state of each MCP server a worker hosts: 1 for its current state, 0 for the others',
      labelNames: ['server', 'state'] as const,
      registers: [registry],
    }),
    failures: new Counter({
      name: 'toolq_mcp_server_failures_total',
      help: 'Times an MCP server failed to start or its connection went down, by reason',
      labelNames: ['server', 'reason'] as const,
      registers: [registry],
    }),
    tools: new Gauge({
      name: 'toolq_mcp_server_tools',
      help: 'Tools of each MCP server the worker serves now (0 while it is down)',
      labelNames: ['server'] as const,
      registers: [registry],
    }),
  };
}
export type McpMetrics = ReturnType<typeof createMcpMetrics>;

export function recordState(metrics: McpMetrics, server: string, state: ConnectionState): void {
  for (const s of CONNECTION_STATES) metrics.state.set({ server, state: s }, s === state ? 1 : 0);
}
