/** The MCP config file, fleet names, input validation and content mapping, without processes. */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is the config syntax under test.
import { ToolqError } from '@toolq/shared';
import {
  mcpErrorText as errorTextOf,
  mcpToToolResultContent as mapToolResultContent,
} from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { parseMcpConfig } from '../src/mcp/config.ts';
import { compileInputSchema } from '../src/mcp/input-schema.ts';
import { fleetToolName, NameTable } from '../src/mcp/names.ts';

const parse = (mcpServers: unknown, env: NodeJS.ProcessEnv = {}) =>
  parseMcpConfig({ mcpServers }, { source: 'mcp.json', env });

function configError(mcpServers: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parse(mcpServers, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ToolqError);
    expect((err as ToolqError).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected a config error');
}

describe('MCP config', () => {
  it('reads stdio and http entries in the mcpServers format, with defaults and ${VAR} expansion', () => {
    const servers = parse(
      {
        fs: { command: 'node', args: ['server.js', '${ROOT}'], env: { TOKEN: '${SECRET}' } },
        api: {
          type: 'http',
          url: 'https://${HOST}/mcp',
          headers: { Authorization: 'Bearer ${SECRET}' },
          toolq: { timeoutMs: 5_000, maxInFlight: 4, deny: ['drop_table'] },
        },
      },
      { ROOT: '/data', SECRET: 's3cret', HOST: 'mcp.example.com' },
    );
    expect(servers[0]).toMatchObject({
      name: 'fs',
      transport: 'stdio',
      command: 'node',
      args: ['server.js', '/data'],
      env: { TOKEN: 's3cret' },
      toolq: { timeoutMs: 30_000, maxInFlight: 16, deny: [], retry: { attempts: 3, backoffMs: 200 } },
    });
    expect(servers[1]).toMatchObject({
      name: 'api',
      transport: 'http',
      url: 'https://mcp.example.com/mcp',
      headers: { Authorization: 'Bearer s3cret' },
      toolq: { timeoutMs: 5_000, maxInFlight: 4, deny: ['drop_table'] },
    });
  });

  it('names the server and the field of every mistake', () => {
    expect(configError({ fs: { args: [] } })).toBe(
      'MCP config mcp.json: server "fs": command: Invalid input: expected string, received undefined',
    );
    expect(configError({ fs: { command: 'x', toolq: { timeoutMs: -1 } } })).toMatch(
      /server "fs": toolq\.timeoutMs: Too small/,
    );
    expect(configError({ fs: { command: 'x', toolq: { maxInflight: 3 } } })).toMatch(
      /server "fs": toolq: unknown field\(s\) maxInflight/,
    );
    expect(configError({ fs: { command: 'x', arg: [] } })).toMatch(
      /server "fs": \(entry\): unknown field\(s\) arg/,
    );
    expect(configError({ api: { type: 'http', url: 'ftp://x' } })).toMatch(
      /server "api": url: must be an http/,
    );
    expect(configError({ api: { type: 'http' } })).toMatch(/server "api": url: /);
    expect(configError({ api: { url: 'http://x/mcp' } })).toMatch(/server "api": type: use "http"/);
    expect(configError({ api: { type: 'sse', url: 'http://x/sse' } })).toMatch(/server "api": type: "sse"/);
    expect(configError({ fs: { command: 'x', env: { K: '${NOPE}' } } })).toMatch(
      /server "fs": env\.K: environment variable NOPE is not set/,
    );
    expect(configError({ 'a.b': { command: 'x' }, a_b: { command: 'y' } })).toMatch(
      /server "a_b": its tool names would clash with server "a\.b"/,
    );
    expect(configError({})).toMatch(/names no server/);
    expect(() => parseMcpConfig({ servers: {} }, { source: 'mcp.json' })).toThrow(/"mcpServers" object/);
  });
});

describe('fleet tool names', () => {
  it('are <server>__<tool>, with characters the Messages API refuses replaced', () => {
    expect(fleetToolName('fs', 'read_file')).toBe('fs__read_file');
    expect(fleetToolName('my.server', 'files/read.v2')).toBe('my_server__files_read_v2');
  });

  it('over 64 characters are cut with a stable hash of the original names', () => {
    const long = fleetToolName('warehouse', 'x'.repeat(120));
    expect(long).toHaveLength(64);
    expect(long).toMatch(/^warehouse__x+_[0-9a-f]{8}$/);
    expect(fleetToolName('warehouse', 'x'.repeat(120))).toBe(long);
    expect(fleetToolName('warehouse', `${'x'.repeat(119)}y`)).not.toBe(long);
  });

  it('a name already taken by another owner is refused', () => {
    const table = new NameTable();
    expect(table.claim('fs__a_b', 'fs', 'tool "a.b"')).toBeUndefined();
    expect(table.claim('fs__a_b', 'fs', 'tool "a.b"')).toBeUndefined();
    expect(table.claim('fs__a_b', 'fs', 'tool "a_b"')).toBe('tool "a.b"');
    table.releaseSource('fs');
    expect(table.claim('fs__a_b', 'fs', 'tool "a_b"')).toBeUndefined();
  });
});

describe('input validation against inputSchema', () => {
  const schema = compileInputSchema({
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: {
      path: { type: 'string' },
      lines: { type: 'array', items: { type: 'integer', minimum: 1 } },
    },
    required: ['path'],
    additionalProperties: false,
  });

  it('passes valid input and sends the schema to the model without $schema', () => {
    expect(schema.zod.safeParse({ path: '/a', lines: [1, 2] }).success).toBe(true);
    expect(schema.jsonSchema).not.toHaveProperty('$schema');
    expect(schema.jsonSchema.required).toEqual(['path']);
  });

  it('names the path and the problem of each mistake', () => {
    const result = schema.zod.safeParse({ lines: [1, 0], extra: true });
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'path: required',
      'extra: not allowed (unknown property)',
      'lines.1: must be >= 1',
    ]);
  });

  it('refuses a schema that is not an object schema or does not compile', () => {
    expect(() => compileInputSchema({ type: 'string' })).toThrow(/"type": "object"/);
    expect(() => compileInputSchema({ type: 'object', properties: { a: { type: 'nope' } } })).toThrow(
      /cannot be compiled/,
    );
  });
});

describe('content mapping', () => {
  it('one text block is a plain string; structured content alone is its JSON', () => {
    expect(mapToolResultContent({ content: [{ type: 'text', text: 'hi' }] })).toBe('hi');
    expect(mapToolResultContent({ content: [], structuredContent: { a: 1 } })).toBe('{"a":1}');
  });

  it('images become image blocks; what the API cannot take is named in a short text', () => {
    expect(
      mapToolResultContent({
        content: [
          { type: 'text', text: 'chart:' },
          { type: 'image', data: 'iVBO', mimeType: 'image/png' },
          { type: 'image', data: 'PHN2', mimeType: 'image/svg+xml' },
          { type: 'audio', data: 'UklG', mimeType: 'audio/wav' },
        ],
      }),
    ).toEqual([
      { type: 'text', text: 'chart:' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBO' } },
      {
        type: 'text',
        text: '[toolq dropped an image of type image/svg+xml: tool results take JPEG, PNG, GIF and WebP images]',
      },
      { type: 'text', text: '[toolq dropped audio of type audio/wav: tool results cannot carry audio]' },
    ]);
  });

  it('the text of an error result is its message', () => {
    expect(errorTextOf({ content: [{ type: 'text', text: 'ENOENT: no such file' }] })).toBe(
      'ENOENT: no such file',
    );
    expect(errorTextOf({ content: [] })).toBe('the tool reported an error without a message');
  });
});
