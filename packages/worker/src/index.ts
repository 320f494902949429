/**
 * The worker as a library: startWorker runs tools from BullMQ queues in this process. MCP servers,
 * tool modules by path and the health server are the CLI's (`toolq-worker --mcp`, `--tools`).
 */
export { startWorker, type ToolqWorker, type WorkerOptions } from './worker.ts';
