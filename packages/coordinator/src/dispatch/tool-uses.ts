/** The tool_use blocks dispatch() is given: picked out of a response's content, and checked. */
import { ToolqError } from '@toolq/shared';
import { show } from './show.ts';

/**
 * The `tool_use` blocks of what dispatch() was given: a response's whole `content` (text,
 * thinking, server_tool_use, … are left out: they are not calls toolq runs) or the tool_use
 * blocks alone. A block without a `type` counts as a tool_use (a literal `{ id, name, input }`).
 * Anything malformed is refused (INVALID_INPUT) rather than answered with a tool_result the
 * Messages API would reject.
 */
export function toolUsesOf<T extends { id: string; name: string; input: unknown }>(
  blocks: readonly unknown[],
): T[] {
  if (!Array.isArray(blocks))
    throw new ToolqError('INVALID_INPUT', `dispatch() takes an array of content blocks, got ${show(blocks)}`);
  const uses: T[] = [];
  blocks.forEach((block, i) => {
    if (typeof block !== 'object' || block === null || Array.isArray(block))
      throw new ToolqError('INVALID_INPUT', `blocks.${i} must be a content block object, got ${show(block)}`);
    const { type, id, name, input } = block as Record<string, unknown>;
    if (type !== undefined && type !== 'tool_use') {
      if (typeof type === 'string') return; // text, thinking, a server tool: not for toolq
      throw new ToolqError('INVALID_INPUT', `blocks.${i}.type must be a string, got ${show(type)}`);
    }
    const wrong =
      typeof id !== 'string' || id === ''
        ? `id must be a non-empty string, got ${show(id)}`
        : typeof name !== 'string' || name === ''
          ? `name must be a non-empty string, got ${show(name)}`
          : input === undefined
            ? 'input is missing'
            : undefined;
    if (wrong) throw new ToolqError('INVALID_INPUT', `blocks.${i} (a tool_use block): ${wrong}`);
    uses.push(block as T);
  });
  return uses;
}

export function assertUniqueIds(toolUses: readonly { id: string }[]): void {
  const seen = new Set<string>();
  for (const [i, use] of toolUses.entries()) {
    if (seen.has(use.id)) throw new ToolqError('INVALID_INPUT', `tool_uses.${i}.id: duplicate id ${use.id}`);
    seen.add(use.id);
  }
}
