/**
 * The `files` scenario: the agent works through a real MCP server (the official filesystem
 * server, on a temporary folder of meeting notes) whose tools run on the worker fleet as
 * `fs__<tool>`. The offline model finds its folder, lists it, reads every note at once, and
 * writes a summary file; its answer is built from what the tools really returned.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ReceivedToolResult, type Script, text, toolUse } from '@toolq/scripted-model';

const NOTES: Record<string, string> = {
  'monday-standup.md':
    '# Monday stand-up\nDecision: ship the MCP integration behind a flag.\nAction: Ada writes the release notes.\n',
  'design-review.md':
    '# Design review\nDecision: one worker pool per MCP server family.\nAction: Linus sizes the fleet for 200 calls/s.\n',
  'retro.md':
    '# Retro\nDecision: keep the offline demo in CI.\nAction: Grace adds the files scenario to the README.\n',
};

export const FILES_TOOLS = [
  'fs__list_allowed_directories',
  'fs__list_directory',
  'fs__read_text_file',
  'fs__write_file',
];

export interface FilesWorkspace {
  dir: string;
  /** The `--mcp` config file the workers are started with. */
  configPath: string;
  stop(): Promise<void>;
}

/** A temp folder with the notes, and an `mcpServers` config running the filesystem server on it. */
export function prepareFilesWorkspace(): FilesWorkspace {
  const root = mkdtempSync(join(tmpdir(), 'toolq-demo-files-'));
  const dir = join(root, 'notes');
  const entry = createRequire(import.meta.url).resolve(
    '@modelcontextprotocol/server-filesystem/dist/index.js',
  );
  mkdirSync(dir);
  for (const [name, body] of Object.entries(NOTES)) writeFileSync(join(dir, name), body);
  const configPath = join(root, 'mcp.json');
  writeFileSync(
    configPath,
    JSON.stringify({ mcpServers: { fs: { command: process.execPath, args: [entry, dir] } } }, null, 2),
  );
  return { dir, configPath, stop: async () => rmSync(root, { recursive: true, force: true }) };
}

const BLOCK_MS = 20;

const lineAfter = (content: string, marker: string) =>
  content
    .split('\n')
    .find((l) => l.startsWith(marker))
    ?.slice(marker.length)
    .trim();

/** Four tool turns (find the folder, list it, read all notes at once, write the summary), then the answer. */
export const filesScript: Script = (ctx) => {
  const results: ReceivedToolResult[] = ctx.toolResults;
  const failed = results.find((r) => r.isError);
  if (failed) return { content: [text(`I could not finish: ${failed.name} answered ${failed.content}`)] };
  switch (ctx.turn) {
    case 0:
      return {
        content: [
          text('First I find the folder I am allowed to work in.'),
          toolUse('fs__list_allowed_directories', {}, { delayMs: BLOCK_MS }),
        ],
      };
    case 1: {
      const dir = results[0]?.content.split('\n')[1]?.trim() ?? '';
      return {
        content: [
          text(`Listing ${dir}.`),
          toolUse('fs__list_directory', { path: dir }, { delayMs: BLOCK_MS }),
        ],
      };
    }
    case 2: {
      const dir = String(previousInput(ctx, 'fs__list_directory')?.path ?? '');
      const files = (results[0]?.content ?? '')
        .split('\n')
        .filter((l) => l.startsWith('[FILE] ') && l.endsWith('.md'))
        .map((l) => l.slice('[FILE] '.length));
      return {
        content: [
          text(`Reading the ${files.length} notes at once.`),
          ...files.map((f) => toolUse('fs__read_text_file', { path: `${dir}/${f}` }, { delayMs: BLOCK_MS })),
        ],
      };
    }
    case 3: {
      const dir = String(previousInput(ctx, 'fs__list_directory')?.path ?? '');
      const lines = results.map((r) => {
        const title = lineAfter(r.content, '# ') ?? String((r.input as { path?: string }).path);
        return `- ${title}: ${lineAfter(r.content, 'Decision:')} (action: ${lineAfter(r.content, 'Action:')})`;
      });
      const summary = `# Summary of ${results.length} meetings\n${lines.join('\n')}\n`;
      return {
        content: [
          text('Writing the summary next to the notes.'),
          toolUse('fs__write_file', { path: `${dir}/summary.md`, content: summary }, { delayMs: BLOCK_MS }),
        ],
      };
    }
    default: {
      const written = previousInput(ctx, 'fs__write_file') as { path?: string; content?: string } | undefined;
      return {
        content: [text(`${results[0]?.content ?? 'Done'}.\n\n${written?.content ?? ''}`.trim())],
      };
    }
  }
};

/** The input of the latest `tool_use` of `name` in the conversation. */
function previousInput(ctx: Parameters<Script>[0], name: string): Record<string, unknown> | undefined {
  for (const message of [...ctx.messages].reverse()) {
    if (message.role !== 'assistant' || typeof message.content === 'string') continue;
    for (const block of message.content) {
      if (block.type === 'tool_use' && block.name === name) return block.input as Record<string, unknown>;
    }
  }
  return undefined;
}
