/**
 * The package boundaries, checked over every import (static, dynamic and type-only) of every
 * TypeScript file in the repository:
 * - no file reaches into another package's files: across packages, only `@toolq/<name>` and the
 *   subpaths its package.json exports;
 * - the coordinator's core (packages/coordinator/src outside agent/, and the layers built on it:
 *   http/ and runs/, the durable agent runs; apart from the entry points index.ts and cli.ts, which
 *   put the pieces together) never imports the agent loop;
 * - no package's src/ has an import cycle (type imports included: they are what tied the
 *   dispatcher to the agent loop's types before);
 * - every name an entry point of a package exports (`@toolq/shared`, `@toolq/shared/internal`, …) is
 *   used outside that package (by another package, its tests, examples/, bench/, test-support/,
 *   test/, deploy/), or is on PUBLIC_ON_PURPOSE: API for users that nothing here happens to use.
 *   A package's own tests do not count: they may import any of its files. `pnpm surface` prints
 *   the counts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { surfaces } from '../scripts/package-surface.ts';
import { REPO_ROOT } from '../test-support/built-packages.ts';

/**
 * Exported for users on purpose though nothing in the repository outside the package uses them:
 * documented in README.md, or the types of what a public function takes or returns.
 */
const PUBLIC_ON_PURPOSE: Record<string, readonly string[]> = {
  // The HTTP client's whole surface: its options, errors and the API's request and response shapes.
  '@toolq/client': [
    'AgentStatus',
    'Approval',
    'ApprovalDecision',
    'ApprovalOutcome',
    'ApprovalStatus',
    'DecidedApproval',
    'CallOptions',
    'CallStats',
    'CatalogTool',
    'FailurePolicy',
    'ImageBlock',
    'MessageParam',
    'Outcome',
    'PerformanceReport',
    'RETRY_DEFAULTS',
    'RUN_EVENTS_DEFAULTS',
    'RetryEvent',
    'RetryOptions',
    'Run',
    'RunCall',
    'RunCreated',
    'RunEvent',
    'RunEventData',
    'RunEventType',
    'RunEventsOptions',
    'RunList',
    'RunRequest',
    'RunResult',
    'RunStatus',
    'TextBlock',
    'TokenUsage',
    'ToolBatch',
    'ToolBatchOptions',
    'ToolResultBlock',
    'ToolUseLike',
    'ToolqClientError',
    'ToolqClientOptions',
    'ToolqConnectionError',
    'ToolqHttpError',
    'ToolqOptionError',
    'ToolqTimeoutError',
  ],
  // What new Dispatcher(), dispatch(), runAgent() and performanceReport() take and return.
  '@toolq/coordinator': [
    'APPROVAL_DEFAULTS',
    'AdvisorOptions',
    'ApprovalDecision',
    'ApprovalHandler',
    'ApprovalOptions',
    'ApprovalOutcome',
    'ApprovalRequest',
    'ApprovalStatus',
    'ApprovalVerdict',
    'AgentDispatcher',
    'AgentEventType',
    'AgentOptions',
    'AgentResult',
    'BatchResult',
    'CallStats',
    // The OpenAI formats' batches (docs/openai-format.md).
    'ChatToolBatch',
    'ChatToolCall',
    'ChatToolMessage',
    'FunctionCallItem',
    'FunctionCallOutputContent',
    'FunctionCallOutputItem',
    'OpenAIBatchStats',
    'ResponsesToolBatch',
    'DispatcherOptions',
    'IterationAction',
    'ModelRole',
    'ModelUsage',
    'TokenCounts',
    'ToolPerformance',
  ],
  // README: a script's responses (thinking, the advisor's blocks), its errors, toolTurnsScript's turns.
  '@toolq/scripted-model': [
    'ScriptedBlock',
    'ScriptedError',
    'ScriptedModelOptions',
    'ScriptedResponse',
    'ScriptedTurn',
    'ScriptedUsage',
    'StopReason',
    'ToolCall',
    'ToolTurn',
    'ToolTurnsOptions',
    'advisorResult',
    'thinking',
  ],
  // defineTool's types, toAnthropicTool (README), the result schema of the job contract, config and tracing;
  // what mcpResult() returns and ToolDefinition's MCP annotations (docs/mcp-server.md).
  '@toolq/shared': [
    'CachePolicy',
    'McpResultValue',
    'ApprovalCondition',
    'ApprovalRule',
    'ApprovalSetting',
    'RetryPolicy',
    'ToolAnnotations',
    'ToolDefinition',
    'ToolRunContext',
    'ToolqConfig',
    'Tracing',
    'callResultSchema',
    'toAnthropicTool',
  ],
  // README lists every diagnostic tool; a tool module exports each by name.
  '@toolq/worker/diagnostics': ['diagCrash', 'diagFail'],
};

const SKIP_DIRS = new Set(['node_modules', 'dist', '.tmp', '.git']);
const COORDINATOR_SRC = join(REPO_ROOT, 'packages', 'coordinator', 'src');
const CORE_MAY_IMPORT_AGENT = new Set(['index.ts', 'cli.ts']);
/** The agent loop itself and what is built on it. */
const ABOVE_CORE = ['agent', 'http', 'runs'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP_DIRS.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFiles(path));
    else if (/\.(ts|mts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

interface ImportEdge {
  from: string;
  specifier: string;
  /** Absolute path for a relative specifier. */
  target?: string;
}

function importsOf(file: string): ImportEdge[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map(({ fileName: specifier }) => ({
    from: file,
    specifier,
    ...(specifier.startsWith('.') ? { target: resolve(dirname(file), specifier) } : {}),
  }));
}

/** `packages/<name>` of a path, or undefined outside packages/. */
function packageOf(path: string): string | undefined {
  const rel = relative(join(REPO_ROOT, 'packages'), path);
  if (rel.startsWith('..')) return undefined;
  return rel.split(sep)[0];
}

const packageDirs = readdirSync(join(REPO_ROOT, 'packages')).filter((name) =>
  existsSync(join(REPO_ROOT, 'packages', name, 'package.json')),
);
const exportsByName = new Map(
  packageDirs.map((dir) => {
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'packages', dir, 'package.json'), 'utf8')) as {
      name: string;
      exports?: Record<string, unknown>;
    };
    return [manifest.name, Object.keys(manifest.exports ?? { '.': '' })];
  }),
);

const files = tsFiles(REPO_ROOT);
const edges = files.flatMap(importsOf);
const show = (edge: ImportEdge) => `${relative(REPO_ROOT, edge.from)} imports ${edge.specifier}`;

describe('package boundaries', () => {
  it('scans the workspace', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(edges.some((e) => e.specifier === '@toolq/shared')).toBe(true);
  });

  it("no file imports another package's files by path", () => {
    const crossing = edges.filter((edge) => {
      if (!edge.target) return false;
      const target = packageOf(edge.target);
      return target !== undefined && target !== packageOf(edge.from);
    });
    expect(crossing.map(show)).toEqual([]);
  });

  it('across packages, only @toolq/<name> and the subpaths it exports', () => {
    const unexported = edges.filter((edge) => {
      const m = /^(@toolq\/[^/]+)(\/.*)?$/.exec(edge.specifier);
      if (!m?.[1]) return false;
      const subpaths = exportsByName.get(m[1]);
      return subpaths === undefined || !subpaths.includes(`.${m[2] ?? ''}`);
    });
    expect(unexported.map(show)).toEqual([]);
  });

  it("the coordinator's core does not import the agent loop", () => {
    const agent = join(COORDINATOR_SRC, 'agent') + sep;
    const intoAgent = edges.filter((edge) => {
      const rel = relative(COORDINATOR_SRC, edge.from);
      if (rel.startsWith('..') || CORE_MAY_IMPORT_AGENT.has(rel)) return false;
      if (ABOVE_CORE.some((dir) => rel.startsWith(`${dir}${sep}`))) return false;
      return edge.target?.startsWith(agent) ?? false;
    });
    expect(intoAgent.map(show)).toEqual([]);
  });

  it("no package's src/ has an import cycle", () => {
    const graph = new Map<string, string[]>();
    for (const edge of edges) {
      if (!edge.target || !edge.from.includes(`${sep}src${sep}`)) continue;
      if (packageOf(edge.from) === undefined || packageOf(edge.target) !== packageOf(edge.from)) continue;
      graph.set(edge.from, [...(graph.get(edge.from) ?? []), edge.target]);
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const next of graph.get(file) ?? []) {
        if (state.get(next) === 'open') {
          cycles.push(
            [...stack.slice(stack.indexOf(next)), next].map((f) => relative(REPO_ROOT, f)).join(' → '),
          );
        } else if (!state.has(next)) visit(next);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  describe('every exported name has a user outside its package, or is public on purpose', () => {
    const entries = surfaces();
    it('reads every entry point', () => {
      expect(entries.map((s) => s.entry.specifier)).toEqual(
        expect.arrayContaining([
          '@toolq/shared',
          '@toolq/shared/internal',
          '@toolq/coordinator',
          '@toolq/worker',
        ]),
      );
    });
    for (const { entry, unusedOutside } of entries) {
      it(entry.specifier, () => {
        const onPurpose = PUBLIC_ON_PURPOSE[entry.specifier] ?? [];
        expect(
          unusedOutside.filter((name) => !onPurpose.includes(name)),
          'exported, but nothing outside the package uses it: stop exporting it, or list it in PUBLIC_ON_PURPOSE',
        ).toEqual([]);
        // A name that left the entry leaves the list too.
        expect(onPurpose.filter((name) => !entry.names.includes(name))).toEqual([]);
      });
    }
    it('entry points name what they export (no `export *`)', () => {
      const star = entries.filter(({ entry }) => entry.exportsStar).map(({ entry }) => entry.specifier);
      expect(star).toEqual([]);
    });
  });
});
