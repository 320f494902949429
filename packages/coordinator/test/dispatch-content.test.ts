/**
 * dispatch(response.content) with the blocks exactly as the real SDK returns them from a Messages
 * API (the scripted one): only the tool_use blocks run, and the tool_results go back to the API
 * as they are, accepted. Malformed blocks are refused, never answered "Unknown tool: undefined".
 */
import type Anthropic from '@anthropic-ai/sdk';
import { passthrough, sequenceScript, serverToolUse, text, thinking, toolUse } from '@toolq/scripted-model';
import { ToolqError } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { useAgentHarness } from './agent-harness.ts';

const harness = useAgentHarness();

describe('dispatch(response.content)', () => {
  it('runs the tool_use blocks among text, thinking and server tool blocks, and the API takes the results', async () => {
    const { model, client } = await harness.model(
      sequenceScript([
        {
          content: [
            thinking('Two lookups, then a search.', { signature: 'sig' }),
            text('Let me check.'),
            serverToolUse('web_search', { query: 'toolq' }, { id: 'srvtoolu_1' }),
            passthrough({ type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [] }),
            toolUse('diag_echo', { value: 'first' }, { id: 'toolu_a' }),
            text('And another.'),
            toolUse('diag_echo', { value: 'second' }, { id: 'toolu_b' }),
          ],
        },
        (ctx) => ({ content: [text(`got ${ctx.toolResults.map((r) => r.content).join(', ')}`)] }),
      ]),
    );
    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Look it up.' }];
    const response = await client.messages.create({ model: 'm', max_tokens: 100, messages });
    expect(response.content.map((b) => b.type)).toEqual([
      'thinking',
      'text',
      'server_tool_use',
      'web_search_tool_result',
      'tool_use',
      'text',
      'tool_use',
    ]);

    const result = await harness.dispatcher.dispatch(response.content);

    expect(result.toolResults).toEqual([
      { type: 'tool_result', tool_use_id: 'toolu_a', content: 'first' },
      { type: 'tool_result', tool_use_id: 'toolu_b', content: 'second' },
    ]);
    // Into the next request with no cast: the API (scripted, validating as the real one) takes it.
    messages.push({ role: 'assistant', content: response.content });
    messages.push({ role: 'user', content: result.toolResults });
    const next = await client.messages.create({ model: 'm', max_tokens: 100, messages });
    expect(next.content).toMatchObject([{ type: 'text', text: 'got first, second' }]);
    expect(model.requests.map((r) => r.status)).toEqual([200, 200]);
  });

  it('a content with no tool_use answers an empty batch', async () => {
    const done: Anthropic.ContentBlock[] = [{ type: 'text', text: 'Done.', citations: null }];
    const result = await harness.dispatcher.dispatch(done);
    expect(result.toolResults).toEqual([]);
  });

  it.each([
    [
      [
        { type: 'text', text: 'hi' },
        { type: 'tool_use', name: 'diag_echo', input: {} },
      ],
      /blocks.1 \(a tool_use block\): id must be a non-empty string, got undefined/,
    ],
    [
      [{ type: 'tool_use', id: 'toolu_x', input: {} }],
      /blocks.0 \(a tool_use block\): name must be a non-empty string, got undefined/,
    ],
    [[{ id: 'toolu_x', name: 'diag_echo' }], /blocks.0 \(a tool_use block\): input is missing/],
    [['toolu_x'], /blocks.0 must be a content block object, got "toolu_x"/],
    [[{ type: 7, id: 'toolu_x' }], /blocks.0.type must be a string, got 7/],
  ])('refuses malformed blocks: %j', async (blocks, message) => {
    const err = await harness.dispatcher.dispatch(blocks as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolqError);
    expect((err as ToolqError).code).toBe('INVALID_INPUT');
    expect((err as ToolqError).message).toMatch(message);
  });
});
