/**
 * Every fenced code block of the user docs (README.md, docs/*.md, deploy/README.md and each
 * packages/<name>/README.md) is checked by what it is:
 *
 * - ```ts (or typescript): a complete module, type-checked with `tsc --strict` (module nodenext)
 *   against the BUILT packages, resolved as in a user's app: a fresh project outside the repository
 *   whose node_modules link @toolq/* to the packages (their `exports` without the workspace's
 *   `toolq-source` condition, so `dist/*.d.ts`), plus zod, @anthropic-ai/sdk, bullmq, openai and
 *   @types/node. Each block is its own module.
 * - ```js (or javascript): the same, as an ES module checked with `checkJs` (what a user's .mjs
 *   file would be told by their editor).
 * - ```ts fragment / ```js fragment: a piece of a program on purpose (names defined elsewhere, `…`
 *   statements): parsed for syntax only. Use it sparingly; a whole example is better.
 * - ```json: must parse (JSON.parse). ```yaml: must parse (the yaml package).
 * - ```sh (or bash, shell): `bash -n`, a syntax check. They are NOT run: they start long-lived
 *   servers (redis-server, workers, coordinators), install from the network, need Docker or a
 *   cluster, or talk to a coordinator the page started a few blocks earlier; running them here
 *   robustly would mean re-implementing each page's story. The README's path itself is run by
 *   test/install/consumer.test.ts from the same files.
 * - ```text, ```http, ```promql, ```dockerfile, ```diff: shown as they are, not checked.
 * A block without a language, or with another one, fails: say what it is.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildablePackages, buildPackages, REPO_ROOT } from '../test-support/built-packages.ts';
import { type CodeBlock, codeBlocks, docFiles } from '../test-support/doc-files.ts';

const TYPED = new Set(['ts', 'typescript', 'js', 'javascript']);
const SHELL = new Set(['sh', 'bash', 'shell']);
const SHOWN = new Set(['text', 'http', 'promql', 'dockerfile', 'diff']);
const KNOWN = new Set([...TYPED, ...SHELL, ...SHOWN, 'json', 'yaml', 'yml']);

const where = (b: CodeBlock, line = 0) => `${b.file}:${b.line + line}`;
const allBlocks = docFiles().flatMap((path) => codeBlocks(path));

let project: string;

/** Node's lookup of a package directory from `from` up (no `exports` needed). */
function packageDir(from: string, name: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (from ${from})`);
  }
}

/** A user's app: package.json of type module, node_modules linking what the blocks import. */
function makeProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'toolq-doc-blocks-'));
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'doc-blocks', private: true, type: 'module' }),
  );
  const link = (name: string, target: string) => {
    const at = join(dir, 'node_modules', name);
    mkdirSync(dirname(at), { recursive: true });
    symlinkSync(realpathSync(target), at, 'dir');
  };
  for (const pkg of buildablePackages().filter((p) => !p.private)) link(pkg.name, pkg.dir);
  // Where the packages themselves find them: one copy of each, as npm would dedupe it.
  link('@anthropic-ai/sdk', packageDir(join(REPO_ROOT, 'packages/coordinator'), '@anthropic-ai/sdk'));
  // The MCP client an app calls /mcp with (docs/mcp-server.md); the worker's own dependency.
  const mcpClient = '@modelcontextprotocol/client';
  link(mcpClient, packageDir(join(REPO_ROOT, 'packages/worker'), mcpClient));
  for (const name of ['zod', 'bullmq', 'ioredis', '@types/node', 'openai'])
    link(name, packageDir(REPO_ROOT, name));
  return dir;
}

function typeCheck(blocks: CodeBlock[]): string[] {
  const files = new Map<string, CodeBlock>();
  blocks.forEach((block, i) => {
    const js = block.lang.startsWith('j');
    const name = join(project, `block-${i}.${js ? 'mjs' : 'mts'}`);
    // Each block is a module of its own, even one without imports.
    writeFileSync(name, `${block.code}export {};\n`);
    files.set(name, block);
  });
  const program = ts.createProgram([...files.keys()], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: ['node'],
    allowJs: true,
    checkJs: true,
    skipLibCheck: true,
    noUncheckedIndexedAccess: false,
    exactOptionalPropertyTypes: false,
  });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const block = d.file && files.get(d.file.fileName);
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!block || !d.file || d.start === undefined) return text;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${where(block, line)}: ${text}`;
  });
}

/** Parse errors only: a fragment's names may be defined elsewhere. */
function syntaxErrors(blocks: CodeBlock[]): string[] {
  return blocks.flatMap((b) => {
    const out = ts.transpileModule(b.code, {
      reportDiagnostics: true,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, allowJs: true },
      fileName: b.lang.startsWith('j') ? 'fragment.mjs' : 'fragment.mts',
    });
    return (out.diagnostics ?? []).map((d) => {
      const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : 0;
      return `${where(b, line)}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
  });
}

beforeAll(async () => {
  await buildPackages();
  project = makeProject();
}, 240_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('code blocks of the docs', () => {
  it('finds the blocks of README.md, docs/ and the packages', () => {
    expect(allBlocks.filter((b) => b.file === 'README.md' && TYPED.has(b.lang)).length).toBeGreaterThan(1);
  });

  it('name their language (one this test checks, or a known shown-only one)', () => {
    const unnamed = allBlocks.filter((b) => !KNOWN.has(b.lang)).map((b) => `${where(b)}: \`\`\`${b.lang}`);
    expect(unnamed, 'mark each block with its language: ts, js, json, yaml, sh, text, http, …').toEqual([]);
  });

  it('ts and js blocks compile under tsc --strict against the built packages', () => {
    const whole = allBlocks.filter((b) => TYPED.has(b.lang) && !b.fragment);
    expect(whole.length).toBeGreaterThan(0);
    expect(typeCheck(whole)).toEqual([]);
  }, 240_000);

  it('ts and js fragments parse', () => {
    expect(syntaxErrors(allBlocks.filter((b) => TYPED.has(b.lang) && b.fragment))).toEqual([]);
  });

  it('the checker itself: a fragment may use names defined elsewhere, not broken syntax', () => {
    const blocks = codeBlocks(
      join(REPO_ROOT, 'x.md'),
      '```ts fragment\nawait dispatcher.dispatch(calls);\n```\n\n```ts fragment\nconst x = {;\n```\n',
    );
    expect(blocks.map((b) => b.fragment)).toEqual([true, true]);
    expect(syntaxErrors(blocks)).toEqual([expect.stringMatching(/^x\.md:6: /)]);
  });

  it('json blocks parse', () => {
    const errors = allBlocks
      .filter((b) => b.lang === 'json')
      .flatMap((b) => {
        try {
          JSON.parse(b.code);
          return [];
        } catch (err) {
          return [`${where(b)}: ${(err as Error).message}`];
        }
      });
    expect(errors).toEqual([]);
  });

  it('yaml blocks parse', () => {
    const errors = allBlocks
      .filter((b) => b.lang === 'yaml' || b.lang === 'yml')
      .flatMap((b) => {
        try {
          parseYaml(b.code);
          return [];
        } catch (err) {
          return [`${where(b)}: ${(err as Error).message}`];
        }
      });
    expect(errors).toEqual([]);
  });

  it('shell blocks are valid bash (bash -n; they are not run)', () => {
    const errors = allBlocks
      .filter((b) => SHELL.has(b.lang))
      .flatMap((b) => {
        const result = spawnSync('bash', ['-n'], { input: b.code, encoding: 'utf8' });
        return result.status === 0 ? [] : [`${where(b)}: ${result.stderr.trim()}`];
      });
    expect(errors).toEqual([]);
  });

  it('the checker itself: a block that does not type-check is reported at its line', () => {
    const bad = codeBlocks(
      join(REPO_ROOT, 'x.md'),
      "text\n\n```ts\nimport { defineTool } from '@toolq/shared';\nconst n: number = defineTool;\n```\n",
    );
    const errors = typeCheck(bad);
    expect(errors.join('\n')).toMatch(/^x\.md:5: Type .* is not assignable to type 'number'/);
  }, 120_000);
});
