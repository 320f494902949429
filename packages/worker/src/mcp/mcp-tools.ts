/**
 * The MCP servers of one worker as a ToolSource: starts every server of the config, serves the
 * tools of those that are connected under their fleet names, and reports every change (a server
 * up or down, `list_changed`) so the worker re-advertises its tools at once.
 */
import type { Tool } from '@modelcontextprotocol/client';
import { type AnyTool, createLogger, type Logger } from '@toolq/shared';
import type { Registry } from '@toolq/shared/internal';
import type { ToolSource } from '../tool-source.ts';
import type { McpServerConfig } from './config.ts';
import { createMcpMetrics } from './metrics.ts';
import { fleetToolName, NameTable } from './names.ts';
import { McpServerConnection } from './server-connection.ts';
import { adaptMcpTool } from './tool-adapter.ts';

export interface McpToolsOptions {
  servers: readonly McpServerConfig[];
  /** Names served by the worker's tool modules: an MCP tool may not take one. */
  reservedNames?: readonly string[];
  logger?: Logger;
  /** The worker's registry, so the MCP metrics are on its /metrics. */
  registry: Registry;
}

export interface McpServerStatus {
  server: string;
  state: McpServerConnection['state'];
  reason: string;
  tools: string[];
}

export interface McpTools extends ToolSource {
  /** Per server: connection state, why it is down, the fleet names it serves. */
  status(): McpServerStatus[];
  /** Stops every server (the whole process group of each stdio server). */
  close(): Promise<void>;
}

/**
 * Connects every server (each server's first attempt, bounded by its `startupTimeoutMs`) and
 * resolves. A server that fails to start keeps being retried in the background, its tools out of
 * the list meanwhile. A tool whose fleet name is taken (by another MCP tool or a tool module's
 * tool) is skipped and logged naming both, at start-up as later: one stray tool of one server
 * does not keep the worker and all its other tools down.
 */
export async function startMcpTools(options: McpToolsOptions): Promise<McpTools> {
  const logger = (options.logger ?? createLogger({ name: 'toolq-worker' })).child({ component: 'mcp' });
  const metrics = createMcpMetrics(options.registry);
  const names = new NameTable();
  for (const name of options.reservedNames ?? []) names.claim(name, 'modules', `tool module tool ${name}`);
  const listeners = new Set<() => void>();
  const served = new Map<string, AnyTool[]>();
  /** Adapted tools by server and MCP definition, so an unchanged tool is not recompiled on reconnect. */
  const adapted = new Map<string, Map<string, ReturnType<typeof adaptMcpTool>>>();
  let startingUp = true;

  const connections = options.servers.map(
    (config) =>
      new McpServerConnection({
        config,
        logger,
        metrics,
        onToolsChanged: () => {
          rebuild(connection(config.name), config);
          if (!startingUp) for (const listener of listeners) listener();
        },
      }),
  );
  const connection = (name: string) => connections.find((c) => c.name === name) as McpServerConnection;

  function rebuild(conn: McpServerConnection, config: McpServerConfig): void {
    names.releaseSource(conn.name);
    const previous = adapted.get(conn.name) ?? new Map<string, ReturnType<typeof adaptMcpTool>>();
    const next = new Map<string, ReturnType<typeof adaptMcpTool>>();
    const tools: AnyTool[] = [];
    for (const tool of conn.tools) {
      if (!isAllowed(tool, config)) continue;
      const fleetName = fleetToolName(conn.name, tool.name);
      const label = `tool ${JSON.stringify(tool.name)} of MCP server ${JSON.stringify(conn.name)}`;
      const clash = names.claim(fleetName, conn.name, label);
      if (clash !== undefined) {
        logger.warn(
          { server: conn.name, tool: tool.name, fleetName, servedAs: clash },
          `${label} would be served as ${fleetName}, which is already ${clash}: not served`,
        );
        continue;
      }
      const key = JSON.stringify(tool);
      let adaptedTool = previous.get(key);
      if (!adaptedTool) {
        try {
          adaptedTool = adaptMcpTool({ fleetName, tool, connection: conn, settings: config.toolq });
        } catch (err) {
          names.release(fleetName);
          logger.error(
            { server: conn.name, tool: tool.name, err: (err as Error).message },
            'MCP tool not served: its definition cannot be used',
          );
          continue;
        }
      }
      next.set(key, adaptedTool);
      tools.push(adaptedTool.tool);
    }
    // While a server is down its tools stay compiled for its return; a changed list frees the old.
    if (conn.state === 'connected') {
      for (const [key, old] of previous) if (!next.has(key)) old.release();
      adapted.set(conn.name, next);
    }
    served.set(conn.name, tools);
    metrics.tools.set({ server: conn.name }, tools.length);
  }

  for (const c of connections) metrics.tools.set({ server: c.name }, 0);
  await Promise.all(connections.map((c) => c.start()));
  startingUp = false;
  for (const c of connections) {
    if (c.state !== 'connected')
      logger.error(
        { server: c.name, reason: c.reason },
        'MCP server is not available; its tools are not served',
      );
  }

  return {
    tools: () => connections.flatMap((c) => served.get(c.name) ?? []),
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    status: () =>
      connections.map((c) => ({
        server: c.name,
        state: c.state,
        reason: c.reason,
        tools: (served.get(c.name) ?? []).map((t) => t.name),
      })),
    close: async () => {
      listeners.clear();
      await Promise.all(connections.map((c) => c.close()));
    },
  };
}

function isAllowed(tool: Tool, config: McpServerConfig): boolean {
  const { allow, deny } = config.toolq;
  if (allow && !allow.includes(tool.name)) return false;
  return !deny.includes(tool.name);
}
