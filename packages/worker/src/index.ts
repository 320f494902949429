export { startHealthServer } from './health-server.ts';
export { BUILT_IN_TOOL_MODULES, loadToolModule } from './tool-modules.ts';
export { startWorker, type ToolqWorker, type WorkerOptions } from './worker.ts';
