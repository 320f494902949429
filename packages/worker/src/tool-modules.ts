/**
 * Resolves `--tools <name or path>` to a list of tools: a built-in module name, or the path of a
 * module whose default export is an array of tools made with `defineTool`.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type AnyTool, ToolqError } from '@toolq/shared';

const BUILT_IN: Record<string, () => Promise<{ default: AnyTool[] }>> = {
  diagnostics: () => import('./tools/diagnostics.ts'),
};

export const BUILT_IN_TOOL_MODULES = Object.keys(BUILT_IN);

export async function loadToolModule(spec: string): Promise<AnyTool[]> {
  const builtIn = BUILT_IN[spec];
  let mod: { default?: unknown };
  try {
    mod = builtIn ? await builtIn() : await import(pathToFileURL(resolve(spec)).href);
  } catch (err) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `cannot load tool module ${JSON.stringify(spec)}: ${(err as Error).message}. ` +
        `Use one of ${BUILT_IN_TOOL_MODULES.join(', ')} or a path to a module.`,
      { cause: err },
    );
  }
  const tools = mod.default;
  if (!Array.isArray(tools) || tools.length === 0 || !tools.every(isTool)) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `tool module ${JSON.stringify(spec)} must default-export a non-empty array of tools made with defineTool()`,
    );
  }
  return tools;
}

function isTool(value: unknown): value is AnyTool {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === 'string' && typeof v.run === 'function' && typeof v.input === 'object';
}
