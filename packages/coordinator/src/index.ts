export type { BatchResult, CallStats } from './batch-result.ts';
export { Catalog, type CatalogTool, type ToolLookup } from './catalog.ts';
export { Dispatcher, type DispatcherOptions, type DispatchOptions, type ToolUse } from './dispatcher.ts';
