/**
 * The tools this worker serves: its fixed tools plus a tool source's (MCP servers), looked up by
 * name for every call and advertised in the catalog as ToolSpecs.
 */
import { type AnyTool, type Logger, ToolqError } from '@toolq/shared';
import { inputJsonSchema, type ToolSpec } from '@toolq/shared/internal';
import type { ToolSource } from './tool-source.ts';
import { WORKER_DEFAULTS } from './worker-options.ts';

/** What running a call needs of the served set: a Map fits too. */
export interface ToolLookup {
  get(name: string): AnyTool | undefined;
}

export class ServedTools implements ToolLookup {
  // The served set changes in place (it is read per call), so the processor needs no hook.
  private readonly tools = new Map<string, AnyTool>();
  private readonly fixed: ReadonlyMap<string, AnyTool>;

  /** Throws TOOL_DEFINITION_INVALID when `fixed` names a tool twice. Call refresh() to add the source's. */
  constructor(
    fixed: readonly AnyTool[],
    private readonly options: { source?: ToolSource; defaultTimeoutMs: number; logger: Logger },
  ) {
    const byName = new Map<string, AnyTool>();
    for (const tool of fixed) {
      if (byName.has(tool.name))
        throw new ToolqError('TOOL_DEFINITION_INVALID', `tool ${tool.name} is listed twice`);
      byName.set(tool.name, tool);
    }
    this.fixed = byName;
    for (const [name, tool] of byName) this.tools.set(name, tool);
  }

  /**
   * Re-reads the tool source; its tools join the fixed ones, except those whose names are taken
   * (logged, not served). Returns the specs of everything now served, for the catalog.
   */
  refresh(): ToolSpec[] {
    this.tools.clear();
    for (const [name, tool] of this.fixed) this.tools.set(name, tool);
    for (const tool of this.options.source?.tools() ?? []) {
      // As the MCP source does with its own clashes: logged, the first owner kept, the worker up.
      if (this.tools.has(tool.name)) {
        const owner = this.fixed.has(tool.name) ? 'a tool module' : 'another tool of the tool source';
        this.options.logger.warn(
          { tool: tool.name, servedBy: owner },
          `the tool source offers ${tool.name}, which ${owner} serves already: not served`,
        );
      } else this.tools.set(tool.name, tool);
    }
    return this.specs();
  }

  get(name: string): AnyTool | undefined {
    return this.tools.get(name);
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  names(): string[] {
    return [...this.tools.keys()];
  }

  specs(): ToolSpec[] {
    return [...this.tools.values()].map((tool) => specOf(tool, this.options.defaultTimeoutMs));
  }
}

/** A tool as the catalog advertises it: the worker's default timeout and retry back-off filled in. */
export function specOf(tool: AnyTool, defaultTimeoutMs: number): ToolSpec {
  return {
    name: tool.name,
    description: tool.description,
    input_schema: inputJsonSchema(tool),
    timeoutMs: tool.timeoutMs ?? defaultTimeoutMs,
    // Only when not the default: the specs (and their version) of other tools stay as they were.
    ...(tool.delivery === 'at-most-once' ? { delivery: tool.delivery } : {}),
    ...(tool.retry
      ? {
          retry: {
            attempts: tool.retry.attempts,
            backoffMs: tool.retry.backoffMs ?? WORKER_DEFAULTS.retryBackoffMs,
          },
        }
      : {}),
    ...(tool.concurrency !== undefined ? { concurrency: tool.concurrency } : {}),
    ...(tool.rateLimit !== undefined
      ? { rateLimit: { max: tool.rateLimit.max, perMs: tool.rateLimit.perMs } }
      : {}),
    ...(tool.annotations ? { annotations: tool.annotations } : {}),
    ...(tool.approval !== undefined && tool.approval !== 'never' ? { approval: tool.approval } : {}),
  };
}
