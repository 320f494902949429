import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, loadConfig, ToolqError, toAnthropicTool } from '../src/index.ts';
import { createKeys, encodeToolOutput } from '../src/internal.ts';

describe('defineTool', () => {
  const base = { description: 'd', input: z.object({ a: z.string() }), run: () => 'ok' };

  it('turns the zod input into the input_schema the Messages API expects', () => {
    const tool = defineTool({
      ...base,
      name: 'get_thing',
      input: z.object({ a: z.string(), n: z.number().optional() }),
    });
    expect(toAnthropicTool(tool)).toEqual({
      name: 'get_thing',
      description: 'd',
      input_schema: {
        type: 'object',
        properties: { a: { type: 'string' }, n: { type: 'number' } },
        required: ['a'],
      },
    });
  });

  it.each([
    [{ name: 'has space' }, /name must match/],
    [{ name: 'x'.repeat(65) }, /name must match/],
    [{ name: 'ok', description: ' ' }, /description must be a non-empty string/],
    [{ name: 'ok', input: z.string() }, /input must be a z.object/],
    [{ name: 'ok', input: z.object({ d: z.date() }) }, /cannot be expressed as JSON Schema/],
    [{ name: 'ok', timeoutMs: -1 }, /timeoutMs must be a number of ms from 1 to 2147483647/],
    // 30 days: a Node timer cannot hold it and would fire at once.
    [{ name: 'ok', timeoutMs: 30 * 24 * 3600_000 }, /timeoutMs must be a number of ms from 1 to 2147483647/],
    [{ name: 'ok', retry: { attempts: 0 } }, /retry.attempts must be an integer >= 1/],
  ])('rejects a bad definition at definition time: %o', (patch, message) => {
    expect(() => defineTool({ ...base, ...patch } as Parameters<typeof defineTool>[0])).toThrow(message);
  });
});

describe('encodeToolOutput', () => {
  it('says why a function, a symbol or a toJSON() without a value cannot be a result', () => {
    for (const [value, kind] of [
      [() => 1, 'function'],
      [Symbol('s'), 'symbol'],
      [{ toJSON: () => undefined }, 'object'],
    ] as const) {
      expect(encodeToolOutput('t', value)).toEqual({
        ok: false,
        message: `Error: the result of t is a ${kind}, which has no JSON form; return a string, a JSON value or content blocks`,
      });
    }
  });

  it('keeps strings, passes content blocks, stringifies the rest', () => {
    expect(encodeToolOutput('t', 'text')).toEqual({ ok: true, content: 'text' });
    expect(encodeToolOutput('t', { a: 1 })).toEqual({ ok: true, content: '{"a":1}' });
    expect(encodeToolOutput('t', undefined)).toEqual({ ok: true, content: 'null' });
    expect(encodeToolOutput('t', [1, 2])).toEqual({ ok: true, content: '[1,2]' });
    const blocks = [{ type: 'text', text: 'hi' }];
    expect(encodeToolOutput('t', blocks)).toEqual({ ok: true, content: blocks });
  });

  it('measures the limit in UTF-8 bytes', () => {
    expect(encodeToolOutput('t', 'é'.repeat(6), 11)).toEqual({
      ok: false,
      message: 'Error: the result of t is 12 bytes, over the limit of 11 bytes',
    });
  });
});

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      prefix: 'toolq',
      pool: 'default',
      concurrency: 32,
      host: '127.0.0.1',
      port: 8080,
    });
    expect(c.apiToken).toBeUndefined();
    expect(c.redisUrl).toBeUndefined();
  });

  it('names every bad variable and what is wrong', () => {
    try {
      loadConfig({
        TOOLQ_PORT: '80a',
        TOOLQ_CONCURRENCY: '0',
        REDIS_URL: 'http://x',
        TOOLQ_API_TOKEN: 'short',
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ToolqError);
      const message = (err as ToolqError).message;
      expect((err as ToolqError).code).toBe('CONFIG_INVALID');
      for (const name of ['REDIS_URL', 'TOOLQ_CONCURRENCY', 'TOOLQ_PORT', 'TOOLQ_API_TOKEN'])
        expect(message).toContain(name);
      expect(message).not.toContain('short'); // a secret's value is never echoed
    }
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ TOOLQ_PORT: '', TOOLQ_API_TOKEN: '' }).port).toBe(8080);
  });
});

describe('keys', () => {
  it('keeps what one script touches in one cluster slot', () => {
    const keys = createKeys('toolq');
    expect(keys.queueName('default')).toBe('{default}');
    expect(keys.batch('c1', 'b1')).toBe('toolq:{c.c1}:batch:b1');
    expect(keys.replyStream('c1')).toBe('toolq:{c.c1}:replies');
    expect(() => createKeys('bad prefix')).toThrow(/prefix/);
    expect(() => keys.queueName('a:b')).toThrow(/pool/);
  });
});
