/** The checks of a run request that need more than its schema: its size as a whole and its tools. */
import { ToolqError } from '@toolq/shared';
import { buildToolsParam } from '../agent/tools-param.ts';
import type { Dispatcher } from '../dispatcher.ts';
import type { RunRequest } from '../http/schemas.ts';
import { NAME_YOUR_TOOLS } from '../http/schemas.ts';

/**
 * A run's input is bounded as a whole (the HTTP body limit is 10 MB, and a run keeps its input for
 * its retention): over `max` bytes of JSON it is refused, naming the largest part.
 */
export function checkRunSize(request: RunRequest, max: number): void {
  const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value) ?? '');
  const total = bytes(request);
  if (total <= max) return;
  const parts: [string, number][] = Object.entries(request).flatMap(([field, value]): [string, number][] =>
    field === 'messages' && Array.isArray(value)
      ? value.map((m: { content?: unknown }, i): [string, number] => [
          `messages[${i}].content`,
          bytes(m.content),
        ])
      : [[field, bytes(value)]],
  );
  const [field, size] = parts.reduce((a, b) => (b[1] > a[1] ? b : a), ['body', 0]);
  throw new ToolqError(
    'RUN_TOO_LARGE',
    `the run's input is ${total} bytes as JSON, more than TOOLQ_MAX_RUN_INPUT_BYTES (${max}); ` +
      `the largest part is ${field} (${size} bytes)`,
  );
}

/** A run's `tools`: each named once, each advertised by a worker (the catalog knows it). */
export async function checkRunTools(dispatcher: Dispatcher, tools: readonly string[]): Promise<void> {
  const repeated = tools.filter((name, i) => tools.indexOf(name) !== i);
  if (repeated.length > 0) {
    throw new ToolqError(
      'INVALID_REQUEST',
      `invalid body: tools: ${[...new Set(repeated)].map((n) => JSON.stringify(n)).join(', ')} named more than once`,
    );
  }
  // Throws UNKNOWN_TOOL (400) naming what no worker has advertised, as the run itself would.
  await buildToolsParam(dispatcher, { tools, serverTools: [], advisor: undefined });
}

/**
 * The tool names a run is offered: its `tools`, or its `tool_set`'s (an unknown set is refused,
 * naming the sets there are). The schema has made sure it gives one of them.
 */
export function resolveRunTools(
  request: Pick<RunRequest, 'tools' | 'tool_set'>,
  toolSets: ReadonlyMap<string, readonly string[]>,
): readonly string[] {
  if (request.tools !== undefined) return request.tools;
  if (request.tool_set === undefined)
    throw new ToolqError('INVALID_REQUEST', `invalid body: tools: ${NAME_YOUR_TOOLS}`);
  const set = toolSets.get(request.tool_set);
  if (set) return set;
  const known = [...toolSets.keys()].sort();
  throw new ToolqError(
    'INVALID_REQUEST',
    `invalid body: tool_set: no tool set ${JSON.stringify(request.tool_set)} on this coordinator; ` +
      (known.length > 0
        ? `the operator defined ${known.join(', ')} (TOOLQ_TOOL_SETS)`
        : 'the operator defined none (TOOLQ_TOOL_SETS): name the tools in `tools` instead'),
  );
}
