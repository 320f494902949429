/** mcpResult(): checked where it is written, carried as MCP content, mapped for the Messages API. */
import { describe, expect, it } from 'vitest';
import { mcpResult, ToolqError } from '../../src/index.ts';
import { encodeToolOutput } from '../../src/internal.ts';

describe('mcpResult()', () => {
  it('refuses a malformed block, naming where', () => {
    expect(() => mcpResult({ content: [{ type: 'audio', data: 'UklG' } as never] })).toThrow(ToolqError);
    expect(() => mcpResult({ content: [{ type: 'audio', data: 'UklG' } as never] })).toThrow(
      /content\.0\.mimeType/,
    );
  });

  it('travels as MCP content as given, and as tool_result content mapped for the Messages API', () => {
    const content = [
      { type: 'text' as const, text: 'clip:' },
      { type: 'audio' as const, data: 'UklGRg==', mimeType: 'audio/wav' },
    ];
    const encoded = encodeToolOutput('t', mcpResult({ content, structuredContent: { seconds: 0 } }), 10_000);
    expect(encoded).toEqual({
      ok: true,
      mcp: { content, structuredContent: { seconds: 0 } },
      content: [
        { type: 'text', text: 'clip:' },
        { type: 'text', text: '[toolq dropped audio of type audio/wav: tool results cannot carry audio]' },
      ],
    });
  });

  it('isError: the call failed, with the error text the model reads', () => {
    const encoded = encodeToolOutput(
      't',
      mcpResult({ content: [{ type: 'text', text: 'disk full' }], isError: true }),
    );
    expect(encoded).toMatchObject({ ok: true, failed: true, content: 'Error: disk full' });
  });

  it('counts the MCP content and its mapping against the result size limit', () => {
    const big = mcpResult({ content: [{ type: 'text', text: 'x'.repeat(600) }] });
    expect(encodeToolOutput('t', big, 1_000)).toMatchObject({
      ok: false,
      message: /over the limit of 1000 bytes/,
    });
  });
});
