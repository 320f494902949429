/**
 * Named tool sets an operator defines for durable runs (TOOLQ_TOOL_SETS): a run says
 * `tool_set: "support"` instead of listing tool names, and is offered exactly those tools. A set
 * is reviewed configuration: a tool added to the fleet (an MCP server with write tools) reaches no
 * run until someone adds it to a set or a run names it.
 */
import { TOOL_NAME_PATTERN } from './tool.ts';

export const TOOL_SET_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * `name:tool,tool;name:tool` (spaces around names are ignored). Messages name the entry by
 * position and set; an error is thrown as `fail(why)`, so config.ts words it as the others.
 */
export function parseToolSets(
  raw: string | undefined,
  fail: (why: string) => never,
): Map<string, readonly string[]> {
  const sets = new Map<string, readonly string[]>();
  if (raw === undefined) return sets;
  raw.split(';').forEach((entry, i) => {
    if (entry.trim() === '' && i > 0) return; // a trailing `;`
    const at = entry.indexOf(':');
    if (at < 0) fail(`entry ${i + 1} is not name:tool,tool,…`);
    const name = entry.slice(0, at).trim();
    if (!TOOL_SET_NAME_PATTERN.test(name))
      fail(`entry ${i + 1}: the set name must be 1-64 letters, digits, _ . -`);
    if (sets.has(name)) fail(`entry ${i + 1}: tool set ${name} is named twice`);
    const tools = entry
      .slice(at + 1)
      .split(',')
      .map((t) => t.trim());
    const bad = tools.find((t) => !TOOL_NAME_PATTERN.test(t));
    if (bad !== undefined)
      fail(
        `entry ${i + 1} (tool set ${name}): ${JSON.stringify(bad)} is not a tool name (1-64 letters, digits, _ -)`,
      );
    const repeated = tools.find((t, k) => tools.indexOf(t) !== k);
    if (repeated !== undefined) fail(`entry ${i + 1} (tool set ${name}): ${repeated} is named twice`);
    sets.set(name, tools);
  });
  return sets;
}
