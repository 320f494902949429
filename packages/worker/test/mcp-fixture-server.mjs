#!/usr/bin/env node
/**
 * A small real MCP server (the SDK's McpServer over stdio) for the tests, with the behaviours the
 * public servers do not offer on demand: tools added and removed at run time (list_changed),
 * every kind of content block, isError results, cancellation it records, a count of calls in
 * flight, a crash on request, and a grandchild process (for the no-orphans check).
 * Extra echo tools can be named in FIXTURE_TOOLS (comma-separated), for the name-mapping tests;
 * FIXTURE_BIG adds `big`, an answer of any size.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { z } from 'zod';

const server = new McpServer({ name: 'toolq-fixture', version: '1.0.0' });
const text = (t) => ({ content: [{ type: 'text', text: t }] });
const PNG_1PX =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

let active = 0;
let maxActive = 0;
const cancelled = [];
const added = new Map();

server.registerTool(
  'slow',
  {
    description: 'Waits `ms` milliseconds (stops early when cancelled), then answers.',
    inputSchema: z.object({ ms: z.number().int().min(0) }),
  },
  async ({ ms }, ctx) => {
    active++;
    maxActive = Math.max(maxActive, active);
    try {
      const signal = ctx.mcpReq.signal;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          cancelled.push(String(signal.reason ?? 'cancelled'));
          resolve();
        });
      });
      return text(`slept ${ms} ms`);
    } finally {
      active--;
    }
  },
);

server.registerTool(
  'stats',
  {
    description: 'Calls in flight at most so far, and the cancellations received.',
    inputSchema: z.object({}),
  },
  async () => text(JSON.stringify({ maxActive, cancelled })),
);

server.registerTool(
  'fail',
  { description: 'Answers with isError: true.', inputSchema: z.object({ message: z.string() }) },
  async ({ message }) => ({ isError: true, content: [{ type: 'text', text: message }] }),
);

server.registerTool(
  'content_kinds',
  { description: 'One content block of each kind.', inputSchema: z.object({}) },
  async () => ({
    content: [
      { type: 'text', text: 'plain text' },
      { type: 'image', data: PNG_1PX, mimeType: 'image/png' },
      { type: 'image', data: 'PHN2Zy8+', mimeType: 'image/svg+xml' },
      { type: 'audio', data: 'UklGRg==', mimeType: 'audio/wav' },
      {
        type: 'resource',
        resource: { uri: 'file:///notes.txt', mimeType: 'text/plain', text: 'resource text' },
      },
      {
        type: 'resource',
        resource: { uri: 'file:///report.pdf', mimeType: 'application/pdf', blob: 'JVBERi0xLjQ=' },
      },
      { type: 'resource_link', uri: 'file:///big.csv', name: 'big.csv', mimeType: 'text/csv' },
    ],
  }),
);

server.registerTool(
  'structured_only',
  {
    description: 'Answers with structuredContent and no content blocks.',
    inputSchema: z.object({}),
    outputSchema: z.object({ answer: z.number() }),
  },
  async () => ({ content: [], structuredContent: { answer: 42 } }),
);

server.registerTool(
  'add_tool',
  {
    description: 'Adds an echo tool (the server sends list_changed).',
    inputSchema: z.object({ name: z.string() }),
  },
  async ({ name }) => {
    added.set(
      name,
      server.registerTool(
        name,
        { description: `Added at run time: ${name}`, inputSchema: z.object({}) },
        async () => text(`hello from ${name}`),
      ),
    );
    return text(`added ${name}`);
  },
);

server.registerTool(
  'remove_tool',
  { description: 'Removes a tool added with add_tool.', inputSchema: z.object({ name: z.string() }) },
  async ({ name }) => {
    added.get(name)?.remove();
    added.delete(name);
    return text(`removed ${name}`);
  },
);

server.registerTool('pid', { description: 'The server process id.', inputSchema: z.object({}) }, async () =>
  text(String(process.pid)),
);

server.registerTool(
  'spawn_grandchild',
  { description: 'Starts a long sleep process and answers its pid.', inputSchema: z.object({}) },
  async () => {
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    return text(String(child.pid));
  },
);

for (const [name, annotations] of [
  ['crash_once_idempotent', { idempotentHint: true }],
  ['crash_once_unsafe', {}],
]) {
  server.registerTool(
    name,
    {
      description: 'Kills this server the first time (marker file absent), answers "survived" after.',
      inputSchema: z.object({ marker: z.string() }),
      annotations,
    },
    async ({ marker }) => {
      if (!existsSync(marker)) {
        writeFileSync(marker, 'crashed');
        process.kill(process.pid, 'SIGKILL');
      }
      return text('survived');
    },
  );
}

server.registerTool(
  'ask_client',
  {
    description: 'Sends the client a sampling, elicitation or roots request and answers with what came back.',
    inputSchema: z.object({ kind: z.enum(['sampling', 'elicitation', 'roots']) }),
  },
  async ({ kind }, ctx) => {
    if (kind === 'sampling') {
      await ctx.mcpReq.requestSampling({
        messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }],
        maxTokens: 10,
      });
    } else if (kind === 'elicitation') {
      await ctx.mcpReq.elicitInput({
        message: 'Your name?',
        requestedSchema: { type: 'object', properties: {} },
      });
    } else {
      await server.server.listRoots();
    }
    return text('the client answered');
  },
);

for (const name of (process.env.FIXTURE_TOOLS ?? '').split(',').filter(Boolean)) {
  server.registerTool(name, { description: `Echo tool ${name}`, inputSchema: z.object({}) }, async () =>
    text(name),
  );
}

if (process.env.FIXTURE_BIG) {
  server.registerTool(
    'big',
    {
      description: 'Answers `bytes` characters of text.',
      inputSchema: z.object({ bytes: z.number().int().min(0) }),
    },
    async ({ bytes }) => text('x'.repeat(bytes)),
  );
}

await server.connect(new StdioServerTransport());
