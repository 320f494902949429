/**
 * Fleet names of MCP tools: server `fs` with tool `read_file` is `fs__read_file`. MCP allows
 * names the Messages API does not (dots, slashes, up to 128 characters), so characters outside
 * `[a-zA-Z0-9_-]` become `_` and a name over 64 characters is cut and given a short hash of the
 * original pair, which keeps it stable across restarts and workers.
 */
import { createHash } from 'node:crypto';
import { TOOL_NAME_PATTERN } from '@toolq/shared/internal';

const MAX_NAME = 64;
const HASH_CHARS = 8;
export const NAME_SEPARATOR = '__';

export function sanitiseNamePart(part: string): string {
  return part.replace(/[^a-zA-Z0-9_-]/g, '_');
}

export function fleetToolName(server: string, tool: string): string {
  const full = `${sanitiseNamePart(server)}${NAME_SEPARATOR}${sanitiseNamePart(tool)}`;
  if (full.length <= MAX_NAME) return full;
  const hash = createHash('sha256')
    .update(server)
    .update('\0')
    .update(tool)
    .digest('hex')
    .slice(0, HASH_CHARS);
  const name = `${full.slice(0, MAX_NAME - HASH_CHARS - 1)}_${hash}`;
  // The pattern holds by construction; checked so a change above cannot slip a bad name out.
  if (!TOOL_NAME_PATTERN.test(name)) throw new Error(`bad fleet name ${name}`);
  return name;
}

/**
 * Which names are taken, and by what: a second owner of a name is refused (two MCP tools that
 * sanitise to the same name, or an MCP tool named like a tool module's tool).
 */
export class NameTable {
  private readonly owners = new Map<string, { source: string; label: string }>();

  /**
   * Takes `name` for `label` (e.g. `tool "read.file" of MCP server "fs"`) of `source` (a server,
   * or `modules`). Returns `undefined` when the name was free or already this label's, otherwise
   * the label of the owner it clashes with.
   */
  claim(name: string, source: string, label: string): string | undefined {
    const current = this.owners.get(name);
    if (current !== undefined && current.label !== label) return current.label;
    this.owners.set(name, { source, label });
    return undefined;
  }

  release(name: string): void {
    this.owners.delete(name);
  }

  /** Frees every name of `source` (a server's tool list is replaced as a whole). */
  releaseSource(source: string): void {
    for (const [name, owner] of this.owners) if (owner.source === source) this.owners.delete(name);
  }
}
