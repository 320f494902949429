/**
 * What the agent loop does with a response, by stop reason (src/agent/stop-reasons.ts), without a
 * model or Redis: every BetaStopReason the SDK declares, null and one it does not know; which
 * blocks are calls toolq runs; a max_tokens cut inside a call asked again with max_tokens doubled
 * up to the ceiling (at and one below it); and the final text.
 */
import { ToolqError } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { decide, isCutInsideToolUse, textOf, toolUsesOf } from '../../src/agent/stop-reasons.ts';
import type { BetaMessage, BetaStopReason } from '../../src/agent/types.ts';
import { mcpToolUse, message, serverToolUse, text, thinking, toolUse } from './message-fixtures.ts';

const LIMITS = { maxTokens: 4_096, maxTokensCeiling: 32_000 };
const NONE: ReadonlySet<string> = new Set();

const weather = toolUse('toolu_01', 'weather', { city: 'Oslo' });
const stock = toolUse('toolu_02', 'stock', { symbol: 'ACME', at: ['open', 'close'] });

function thrown(fn: () => unknown): ToolqError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ToolqError);
    return err as ToolqError;
  }
  throw new Error('expected a throw');
}

describe('toolUsesOf', () => {
  it('takes the tool_use blocks in order with their id, name and input, and nothing else', () => {
    const response = message('tool_use', [
      thinking('two lookups'),
      text('Looking both up.'),
      weather,
      serverToolUse('srvtoolu_01'),
      mcpToolUse('mcptoolu_01'),
      stock,
    ]);
    expect(toolUsesOf(response)).toEqual([
      { id: 'toolu_01', name: 'weather', input: { city: 'Oslo' } },
      { id: 'toolu_02', name: 'stock', input: { symbol: 'ACME', at: ['open', 'close'] } },
    ]);
  });

  it('finds none in a response of server tools and text', () => {
    expect(toolUsesOf(message('pause_turn', [serverToolUse('srvtoolu_01'), text('searching')]))).toEqual([]);
  });
});

describe('decide', () => {
  it('tool_use: runs the calls', () => {
    expect(decide(message('tool_use', [text('On it.'), weather, stock]), NONE, LIMITS)).toEqual({
      kind: 'tools',
      toolUses: [
        { id: 'toolu_01', name: 'weather', input: { city: 'Oslo' } },
        { id: 'toolu_02', name: 'stock', input: { symbol: 'ACME', at: ['open', 'close'] } },
      ],
    });
  });

  it('tool_use without a call toolq runs (only server or MCP tools): ends the run as end_turn, message kept', () => {
    const response = message('tool_use', [serverToolUse('srvtoolu_01'), mcpToolUse('mcptoolu_01')]);
    expect(decide(response, NONE, LIMITS)).toEqual({ kind: 'final', status: 'end_turn', keepMessage: true });
  });

  it.each(['end_turn', 'stop_sequence', 'refusal', 'model_context_window_exceeded'] as const)(
    '%s: ends the run with that status and keeps the message',
    (stop) => {
      expect(decide(message(stop, [text('Done.')]), NONE, LIMITS)).toEqual({
        kind: 'final',
        status: stop,
        keepMessage: true,
      });
    },
  );

  it('end_turn ends the run even if the response holds a tool_use block: its calls are not run', () => {
    expect(decide(message('end_turn', [text('Done.'), weather]), NONE, LIMITS)).toMatchObject({
      kind: 'final',
    });
  });

  it.each(['pause_turn', 'compaction'] as const)(
    '%s: asks again, or runs the calls the response holds first',
    (stop) => {
      expect(
        decide(message(stop, [serverToolUse('srvtoolu_01'), text('Still searching.')]), NONE, LIMITS),
      ).toEqual({
        kind: 'continue',
      });
      expect(decide(message(stop, [text('x'), weather]), NONE, LIMITS)).toEqual({
        kind: 'tools',
        toolUses: [{ id: 'toolu_01', name: 'weather', input: { city: 'Oslo' } }],
      });
    },
  );

  describe('max_tokens', () => {
    it('cut inside a streamed tool_use (its JSON unfinished): asks again with max_tokens doubled', () => {
      // Streaming saw toolu_02's JSON stop at `{"symbol":"AC`; the SDK kept what it could parse.
      const response = message('max_tokens', [weather, toolUse('toolu_02', 'stock', { symbol: 'AC' })]);
      expect(decide(response, new Set(['toolu_02']), LIMITS)).toEqual({ kind: 'retry', maxTokens: 8_192 });
      // The unfinished JSON alone is enough, whatever block the content ends with.
      expect(isCutInsideToolUse(message('max_tokens', [weather, text('')]), new Set(['toolu_01']))).toBe(
        true,
      );
    });

    it('cut inside a tool_use of a JSON response (a tool_use last, input {}): asks again', () => {
      const response = message('max_tokens', [text('Let me check.'), toolUse('toolu_01', 'weather', {})]);
      expect(isCutInsideToolUse(response, NONE)).toBe(true);
      expect(decide(response, NONE, LIMITS)).toEqual({ kind: 'retry', maxTokens: 8_192 });
    });

    it('doubles up to the ceiling, not past it, and gives up once at it', () => {
      const cut = message('max_tokens', [toolUse('toolu_01', 'weather', {})]);
      const at = (maxTokens: number, maxTokensCeiling: number) =>
        decide(cut, NONE, { maxTokens, maxTokensCeiling });
      expect(at(16_000, 32_000)).toEqual({ kind: 'retry', maxTokens: 32_000 });
      expect(at(20_000, 32_000)).toEqual({ kind: 'retry', maxTokens: 32_000 });
      expect(at(31_999, 32_000)).toEqual({ kind: 'retry', maxTokens: 32_000 });
      // At the ceiling the cut call cannot be finished: the run ends and the cut message is dropped.
      expect(at(32_000, 32_000)).toEqual({ kind: 'final', status: 'max_tokens', keepMessage: false });
      expect(at(64_000, 32_000)).toEqual({ kind: 'final', status: 'max_tokens', keepMessage: false });
    });

    it('complete calls before the limit struck in text: they run', () => {
      const response = message('max_tokens', [weather, stock, text('And then I will')]);
      expect(isCutInsideToolUse(response, NONE)).toBe(false);
      expect(decide(response, NONE, LIMITS)).toEqual({
        kind: 'tools',
        toolUses: [
          { id: 'toolu_01', name: 'weather', input: { city: 'Oslo' } },
          { id: 'toolu_02', name: 'stock', input: { symbol: 'ACME', at: ['open', 'close'] } },
        ],
      });
    });

    it('cut in text without any call: ends the run as max_tokens and keeps the message', () => {
      const response = message('max_tokens', [thinking('hmm'), text('The answer is')]);
      expect(decide(response, NONE, LIMITS)).toEqual({
        kind: 'final',
        status: 'max_tokens',
        keepMessage: true,
      });
    });
  });

  it('a cut is only ever a max_tokens response', () => {
    const stops: BetaStopReason[] = ['tool_use', 'end_turn', 'pause_turn', 'refusal'];
    for (const stop of stops) {
      expect(isCutInsideToolUse(message(stop, [weather]), new Set(['toolu_01'])), stop).toBe(false);
    }
  });

  it('no stop_reason: a model error naming the response', () => {
    const err = thrown(() => decide(message(null, [text('partial')], { id: 'msg_nostop' }), NONE, LIMITS));
    expect(err.code).toBe('MODEL_ERROR');
    expect(err.message).toBe('response msg_nostop arrived without a stop_reason');
  });

  it('a stop_reason this SDK does not declare: a model error naming it', () => {
    const future = { ...message('end_turn', [text('x')], { id: 'msg_future' }), stop_reason: 'tea_break' };
    const err = thrown(() => decide(future as unknown as BetaMessage, NONE, LIMITS));
    expect(err.code).toBe('MODEL_ERROR');
    expect(err.message).toBe('unexpected stop_reason tea_break in msg_future');
  });
});

describe('textOf', () => {
  it('joins the text blocks with newlines, trimmed, skipping thinking and calls', () => {
    const response = message('end_turn', [
      thinking('private'),
      text('  First.'),
      weather,
      text('Second.\n'),
      serverToolUse('srvtoolu_01'),
    ]);
    expect(textOf(response)).toBe('First.\nSecond.');
  });

  it('is empty for no message or a message without text', () => {
    expect(textOf(undefined)).toBe('');
    expect(textOf(message('tool_use', [weather]))).toBe('');
  });
});
