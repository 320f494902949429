/**
 * Tools for the tests of the coordinator's MCP server (`--tools <this file>` on a worker): the
 * fixture tools of the official MCP conformance suite (its server scenarios call them by these
 * names), and `mcp_sleep` for parallel and cancelled calls.
 */
import { writeFileSync } from 'node:fs';
import { defineTool, mcpResult } from '@toolq/shared';
import { z } from 'zod';

const PNG_1PX =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
/** A WAV header and no samples: the smallest valid WAV file. */
const WAV_EMPTY = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=';
const none = z.object({}).strict();
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

export const simpleText = defineTool({
  name: 'test_simple_text',
  description: 'Answers with a simple text (a plain string result: mapped to one text block).',
  input: none,
  run: () => 'This is a simple text response for testing.',
});

export const imageContent = defineTool({
  name: 'test_image_content',
  description: 'Answers with a 1x1 PNG image.',
  input: none,
  annotations: { readOnlyHint: true, title: 'Tiny image' },
  run: () => mcpResult({ content: [{ type: 'image', data: PNG_1PX, mimeType: 'image/png' }] }),
});

export const audioContent = defineTool({
  name: 'test_audio_content',
  description: 'Answers with a (silent) WAV audio clip.',
  input: none,
  run: () => mcpResult({ content: [{ type: 'audio', data: WAV_EMPTY, mimeType: 'audio/wav' }] }),
});

export const embeddedResource = defineTool({
  name: 'test_embedded_resource',
  description: 'Answers with an embedded text resource.',
  input: none,
  run: () =>
    mcpResult({
      content: [
        {
          type: 'resource',
          resource: {
            uri: 'test://embedded-resource',
            mimeType: 'text/plain',
            text: 'This is an embedded resource content.',
          },
        },
      ],
    }),
});

export const multipleContentTypes = defineTool({
  name: 'test_multiple_content_types',
  description: 'Answers with text, an image and an embedded resource.',
  input: none,
  run: () =>
    mcpResult({
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG_1PX, mimeType: 'image/png' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: '{"test":"data","value":123}',
          },
        },
      ],
    }),
});

export const errorHandling = defineTool({
  name: 'test_error_handling',
  description: 'Always fails.',
  input: none,
  run: () => {
    throw new Error('This tool intentionally returns an error for testing');
  },
});

export const withProgress = defineTool({
  name: 'test_tool_with_progress',
  description: 'Reports progress 0, 50 and 100 of 100, about 50 ms apart.',
  input: none,
  run: async (_input, ctx) => {
    ctx.reportProgress(0, 100);
    await sleep(50, ctx.signal);
    ctx.reportProgress(50, 100, 'half way');
    await sleep(50, ctx.signal);
    ctx.reportProgress(100, 100);
    return 'Progress test completed';
  },
});

export const jsonSchema202012 = defineTool({
  name: 'json_schema_2020_12_tool',
  description: 'Tool with JSON Schema 2020-12 features',
  input: z
    .object({
      name: z.string().optional(),
      address: z.object({ street: z.string().optional(), city: z.string().optional() }).optional(),
    })
    .strict(),
  inputSchema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    $defs: {
      address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } },
    },
    properties: { name: { type: 'string' }, address: { $ref: '#/$defs/address' } },
    additionalProperties: false,
  },
  run: (input) => JSON.stringify(input),
});

export const mcpSleep = defineTool({
  name: 'mcp_sleep',
  description:
    'Waits `ms` (reporting progress each 100 ms), then answers when it started and ended. Aborted, it writes the reason to `abort_file` when one is given.',
  input: z.object({ ms: z.number().int().min(0).max(60_000), abort_file: z.string().optional() }),
  run: async ({ ms, abort_file }, ctx) => {
    const startedAt = Date.now();
    try {
      for (let waited = 0; waited < ms; waited += 100) {
        ctx.reportProgress(waited, ms);
        await sleep(Math.min(100, ms - waited), ctx.signal);
      }
    } catch (err) {
      if (abort_file) writeFileSync(abort_file, String((err as Error)?.message ?? err));
      throw err;
    }
    return { startedAt, endedAt: Date.now() };
  },
});

export default [
  simpleText,
  imageContent,
  audioContent,
  embeddedResource,
  multipleContentTypes,
  errorHandling,
  withProgress,
  jsonSchema202012,
  mcpSleep,
];
