/** Tools that misbehave on purpose, to test that the system recovers (served by in-process or CLI workers). */
import { defineTool, NonRetryableError } from '@toolq/shared';
import { z } from 'zod';

export const flaky = defineTool({
  name: 'test_flaky',
  description: 'Fails until attempt `succeed_on`, then returns the attempt number.',
  input: z.object({ succeed_on: z.number().int().min(1) }),
  retry: { attempts: 3, backoffMs: 10 },
  run: ({ succeed_on }, { attempt }) => {
    if (attempt < succeed_on) throw new Error(`attempt ${attempt} failed`);
    return { attempt };
  },
});

export const fatal = defineTool({
  name: 'test_fatal',
  description: 'Fails with a NonRetryableError.',
  input: z.object({}),
  retry: { attempts: 5, backoffMs: 10 },
  run: () => {
    throw new NonRetryableError('not worth retrying');
  },
});

let counter = 0;
export const counted = defineTool({
  name: 'test_counted',
  description: 'Waits `ms`, then returns how many times it has run in this process.',
  input: z.object({ ms: z.number().int().min(0) }),
  run: async ({ ms }) => {
    counter++;
    const mine = counter;
    await new Promise((resolve) => setTimeout(resolve, ms));
    return { run: mine };
  },
});

export const hang = defineTool({
  name: 'test_hang',
  description: 'Never returns and ignores its AbortSignal.',
  input: z.object({}),
  timeoutMs: 60_000,
  run: () => new Promise(() => undefined),
});

export const huge = defineTool({
  name: 'test_huge',
  description: 'Returns a string of `bytes` bytes.',
  input: z.object({ bytes: z.number().int().min(0) }),
  run: ({ bytes }) => 'x'.repeat(bytes),
});

export const unserialisable = defineTool({
  name: 'test_unserialisable',
  description: 'Returns a value JSON cannot encode.',
  input: z.object({ kind: z.enum(['bigint', 'circular']) }),
  run: ({ kind }) => {
    if (kind === 'bigint') return { n: 10n };
    const a: Record<string, unknown> = {};
    a.self = a;
    return a;
  },
});

export const blocks = defineTool({
  name: 'test_blocks',
  description: 'Returns content blocks.',
  input: z.object({}),
  run: () => [
    { type: 'text', text: 'hello' },
    { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
  ],
});

export const keys = defineTool({
  name: 'test_keys',
  description: 'Returns the own keys of its input object and whether Object.prototype was touched.',
  input: z.object({ obj: z.record(z.string(), z.unknown()) }),
  run: ({ obj }) => ({
    keys: Object.keys(obj),
    polluted: ({} as Record<string, unknown>).polluted !== undefined,
  }),
});

const testTools = [flaky, fatal, counted, hang, huge, unserialisable, blocks, keys];
export default testTools;
