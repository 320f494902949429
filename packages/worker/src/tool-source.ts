import type { AnyTool } from '@toolq/shared';

/**
 * Tools that can change while a worker runs (the tools of its MCP servers): the worker serves
 * `tools()` beside its fixed tools and re-advertises them in the catalog on every change.
 */
export interface ToolSource {
  tools(): readonly AnyTool[];
  /** Calls `listener` after each change of `tools()`; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}
