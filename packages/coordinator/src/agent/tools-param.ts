/**
 * The `tools` of a request: the catalog's tools (advertised by live workers, so the coordinator
 * never imports their code), then any server tools and the advisor, which the API runs itself.
 * `'all'` is every catalog tool with a live (or awaited) worker except the diagnostics tools.
 */
import { ToolqError } from '@toolq/shared';
import type { CatalogTool } from '../catalog.ts';
import { advisorTool } from './advisor.ts';
import type { AdvisorOptions, AgentDispatcher, BetaToolUnion } from './types.ts';

export interface ToolSelection {
  tools: 'all' | readonly string[];
  serverTools: readonly BetaToolUnion[];
  advisor: AdvisorOptions | undefined;
}

export interface ToolsParam {
  tools: BetaToolUnion[];
  /**
   * The catalog tools offered: the only `tool_use` names the loop dispatches. Anything else the
   * model asks for (a made-up name, a prompt injection, a compromised gateway) is refused unrun.
   */
  offered: ReadonlySet<string>;
}

/**
 * The diagnostics module's tools (`diag_sleep`, `diag_echo`, `diag_fail`, `diag_crash`) are for
 * operators and checks: `diag_crash` SIGKILLs the worker that runs it. `'all'` leaves them out, so
 * a model is offered them only when a run names them.
 */
const DIAGNOSTICS_PREFIX = 'diag_';

export async function buildToolsParam(
  dispatcher: AgentDispatcher,
  selection: ToolSelection,
): Promise<ToolsParam> {
  const catalogTools = await selectCatalogTools(dispatcher, selection.tools);
  const tools: BetaToolUnion[] = catalogTools.map((tool) => ({
    name: tool.name,
    description: tool.description,
    input_schema: { ...tool.input_schema, type: 'object' },
  }));
  tools.push(...selection.serverTools);
  if (selection.advisor) tools.push(advisorTool(selection.advisor));
  return { tools, offered: new Set(catalogTools.map((t) => t.name)) };
}

async function selectCatalogTools(
  dispatcher: AgentDispatcher,
  wanted: 'all' | readonly string[],
): Promise<CatalogTool[]> {
  if (wanted !== 'all' && wanted.length === 0) return [];
  let listed = dispatcher.catalog.list();
  const missing = () => (wanted === 'all' ? [] : wanted.filter((n) => !listed.some((t) => t.name === n)));
  // A worker that has just started may not be in the cached catalog yet.
  if (missing().length > 0 || listed.length === 0) {
    await dispatcher.catalog.refresh();
    listed = dispatcher.catalog.list();
  }
  if (wanted === 'all')
    return listed.filter(
      (t) => (t.liveWorkers > 0 || t.waitsForWorkers) && !t.name.startsWith(DIAGNOSTICS_PREFIX),
    );
  const absent = missing();
  if (absent.length > 0) {
    throw new ToolqError(
      'UNKNOWN_TOOL',
      `no worker has advertised ${absent.map((n) => JSON.stringify(n)).join(', ')}; ` +
        `known tools: ${listed.map((t) => t.name).join(', ') || '(none: start a worker with `pnpm worker --tools <module>`)'}`,
    );
  }
  return wanted.map((name) => listed.find((t) => t.name === name) as CatalogTool);
}
