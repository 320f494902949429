export { startHealthServer } from './health-server.ts';
export {
  loadMcpConfig,
  type McpHttpServerConfig,
  type McpServerConfig,
  type McpStdioServerConfig,
  type McpToolqSettings,
  parseMcpConfig,
} from './mcp/config.ts';
export { mapToolResultContent } from './mcp/content.ts';
export { type McpServerStatus, type McpTools, type McpToolsOptions, startMcpTools } from './mcp/mcp-tools.ts';
export { fleetToolName } from './mcp/names.ts';
export { BUILT_IN_TOOL_MODULES, loadToolModule } from './tool-modules.ts';
export type { ToolSource } from './tool-source.ts';
export { startWorker, type ToolqWorker, type WorkerOptions } from './worker.ts';
