/**
 * The fleet's tools as MCP lists them: each tool's input schema exactly as the tool declares it
 * (`$schema`, `$defs`, `additionalProperties` kept) and its annotations. Tools without a live
 * worker (and whose pool does not wait for one) are left out: a call to them could only fail.
 */
import { createHash } from 'node:crypto';
import type { CatalogTool } from '../catalog.ts';

export interface ListedTool {
  [key: string]: unknown;
  name: string;
  title?: string;
  description: string;
  inputSchema: { type: 'object'; [key: string]: unknown };
  annotations?: Record<string, unknown>;
}

export function listedTools(catalog: readonly CatalogTool[]): ListedTool[] {
  return catalog
    .filter((tool) => tool.liveWorkers > 0 || tool.waitsForWorkers)
    .map((tool) => ({
      name: tool.name,
      ...(tool.annotations?.title ? { title: tool.annotations.title } : {}),
      description: tool.description,
      inputSchema: { ...tool.input_schema, type: 'object' as const },
      ...(tool.annotations ? { annotations: tool.annotations } : {}),
    }));
}

/** Changes whenever what `tools/list` answers changes: when it does, clients are told. */
export function toolListVersion(tools: readonly ListedTool[]): string {
  return createHash('sha256').update(JSON.stringify(tools)).digest('base64url');
}
