/** runCall without Redis: every outcome it turns a tool's run into. */
import { type AnyTool, CONTRACT_VERSION, defineTool, NonRetryableError } from '@toolq/shared';
import type { ParsedJobData } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { runCall } from '../../src/run-call.ts';

function callOf(tool: string, input: unknown, extra: Partial<ParsedJobData> = {}): ParsedJobData {
  const now = Date.now();
  return {
    v: CONTRACT_VERSION,
    tool,
    input,
    toolUseId: 'toolu_1',
    deadline: now + 60_000,
    timeoutMs: 30_000,
    failurePolicy: 'continue',
    enqueuedAt: now - 5,
    ...extra,
  };
}

function run(
  tool: AnyTool,
  data: ParsedJobData,
  options: { signal?: AbortSignal; maxResultBytes?: number } = {},
) {
  return runCall({
    tools: new Map([[tool.name, tool]]),
    data,
    workerId: 'w1',
    batchUid: 'b1',
    idempotencyKey: 'k1',
    maxResultBytes: options.maxResultBytes ?? 1_000_000,
    signal: options.signal ?? new AbortController().signal,
  });
}

const echo = defineTool({
  name: 'echo',
  description: 'echoes',
  input: z.object({ text: z.string() }),
  run: ({ text }) => text,
});

/** Never settles and ignores its signal: only runCall's own race can answer it. */
const stuck = defineTool({
  name: 'stuck',
  description: 'never returns',
  input: z.object({}),
  run: () => new Promise<never>(() => undefined),
});

describe('runCall', () => {
  it('runs the tool and reports ok with its output, times and identity', async () => {
    const data = callOf('echo', { text: 'hi' });
    const before = Date.now();
    const result = await run(echo, data);
    expect(result).toMatchObject({
      v: CONTRACT_VERSION,
      toolUseId: 'toolu_1',
      tool: 'echo',
      worker: 'w1',
      outcome: 'ok',
      content: 'hi',
      isError: false,
      attempts: 1,
      enqueuedAt: data.enqueuedAt,
    });
    expect(result.startedAt).toBeGreaterThanOrEqual(before);
    expect(result.finishedAt).toBeGreaterThanOrEqual(result.startedAt ?? Number.POSITIVE_INFINITY);
  });

  it('hands the tool its context: attempt, ids and a deadline bounded by the call deadline', async () => {
    let seen: unknown;
    const spy = defineTool({
      name: 'spy',
      description: 'records its context',
      input: z.object({}),
      run: (_input, ctx) => {
        seen = { ...ctx, aborted: ctx.signal.aborted };
        return 'ok';
      },
    });
    const data = callOf('spy', {}, { timeoutMs: 30_000, deadline: Date.now() + 5_000 });
    const result = await run(spy, data);
    expect(seen).toMatchObject({ attempt: 1, toolUseId: 'toolu_1', batchId: 'b1', aborted: false });
    const deadline = (seen as { deadline: number }).deadline;
    // The deadline (5 s away) is nearer than the timeout (30 s): it bounds the run.
    expect(deadline).toBeLessThanOrEqual(data.deadline);
    expect(deadline).toBeGreaterThanOrEqual((result.startedAt ?? 0) + 4_000);
  });

  it('encodes results: JSON for values, content blocks as they are, null for undefined', async () => {
    const value = (output: unknown) =>
      defineTool({ name: 'value', description: 'returns a value', input: z.object({}), run: () => output });
    expect((await run(value({ a: [1, 2] }), callOf('value', {}))).content).toBe('{"a":[1,2]}');
    expect((await run(value(undefined), callOf('value', {}))).content).toBe('null');
    const blocks = [{ type: 'text', text: 'x' }];
    expect((await run(value(blocks), callOf('value', {}))).content).toEqual(blocks);
  });

  it('turns a result over maxResultBytes, or one without a JSON form, into an error', async () => {
    const big = defineTool({
      name: 'big',
      description: 'big',
      input: z.object({}),
      run: () => 'x'.repeat(101),
    });
    const tooBig = await run(big, callOf('big', {}), { maxResultBytes: 100 });
    expect(tooBig).toMatchObject({ outcome: 'error', isError: true, attempts: 1 });
    expect(tooBig.content).toBe('Error: the result of big is 101 bytes, over the limit of 100 bytes');
    expect((await run(big, callOf('big', {}), { maxResultBytes: 101 })).outcome).toBe('ok');

    const fn = defineTool({ name: 'fn', description: 'fn', input: z.object({}), run: () => () => 1 });
    const noJson = await run(fn, callOf('fn', {}));
    expect(noJson.outcome).toBe('error');
    expect(noJson.content).toMatch(/^Error: the result of fn is a function, which has no JSON form/);
  });

  it('reports a thrown error (or a thrown non-error) as is_error text', async () => {
    const boom = defineTool({
      name: 'boom',
      description: 'throws',
      input: z.object({ what: z.string() }),
      run: ({ what }) => {
        if (what === 'string') throw 'plain string';
        throw new Error('disk on fire');
      },
    });
    const thrown = await run(boom, callOf('boom', { what: 'error' }));
    expect(thrown).toMatchObject({
      outcome: 'error',
      isError: true,
      content: 'Error: disk on fire',
      attempts: 1,
    });
    expect((await run(boom, callOf('boom', { what: 'string' }))).content).toBe('Error: plain string');
  });

  it('a rejected promise is reported like a throw', async () => {
    const rejects = defineTool({
      name: 'rejects',
      description: 'rejects',
      input: z.object({}),
      run: async () => Promise.reject(new Error('later')),
    });
    expect((await run(rejects, callOf('rejects', {}))).content).toBe('Error: later');
  });

  it('refuses input that fails the tool schema, without running the tool', async () => {
    let ran = false;
    const strict = defineTool({
      name: 'strict',
      description: 'strict',
      input: z.object({ n: z.number().int(), tag: z.string() }),
      run: () => {
        ran = true;
        return 'ran';
      },
    });
    const result = await run(strict, callOf('strict', { n: 'three' }));
    expect(ran).toBe(false);
    expect(result).toMatchObject({ outcome: 'invalid_input', isError: true, attempts: 0 });
    expect(result.content).toMatch(/^Invalid input for strict: n: .+; tag: .+/);
  });

  it('passes the parsed input (zod defaults and transforms applied) to the tool', async () => {
    const withDefault = defineTool({
      name: 'defaulted',
      description: 'defaults',
      input: z.object({ n: z.number().default(7) }),
      run: ({ n }) => `n=${n}`,
    });
    expect((await run(withDefault, callOf('defaulted', {}))).content).toBe('n=7');
  });

  it('answers a tool it does not serve as unknown_tool', async () => {
    const result = await run(echo, callOf('missing', {}));
    expect(result).toMatchObject({ outcome: 'unknown_tool', isError: true, attempts: 0 });
    expect(result.content).toBe('Unknown tool: missing');
  });

  it('times out a tool that never returns and ignores its signal', async () => {
    const result = await run(stuck, callOf('stuck', {}, { timeoutMs: 50 }));
    expect(result).toMatchObject({ outcome: 'timeout', isError: true, attempts: 1 });
    expect(result.content).toBe('Tool stuck timed out after 0.05s');
  });

  it('times out at the call deadline when it comes before the timeout', async () => {
    const started = Date.now();
    const result = await run(stuck, callOf('stuck', {}, { timeoutMs: 30_000, deadline: Date.now() + 50 }));
    expect(result.outcome).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("aborts the tool's signal on timeout", async () => {
    let signal: AbortSignal | undefined;
    const listens = defineTool({
      name: 'listens',
      description: 'waits for its signal',
      input: z.object({}),
      run: (_input, ctx) => {
        signal = ctx.signal;
        return new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(new Error('stopped'))),
        );
      },
    });
    const result = await run(listens, callOf('listens', {}, { timeoutMs: 30 }));
    expect(result.outcome).toBe('timeout');
    expect(signal?.aborted).toBe(true);
  });

  it('answers cancelled, with the reason, when the outer signal aborts', async () => {
    const outer = new AbortController();
    setTimeout(() => outer.abort(new Error('batch answered')), 20);
    const result = await run(stuck, callOf('stuck', {}), { signal: outer.signal });
    expect(result).toMatchObject({
      outcome: 'cancelled',
      isError: true,
      content: 'Error: cancelled: batch answered',
    });
  });

  it('answers cancelled at once for a signal aborted before the run', async () => {
    const outer = new AbortController();
    outer.abort('gone');
    const result = await run(stuck, callOf('stuck', {}), { signal: outer.signal });
    expect(result).toMatchObject({ outcome: 'cancelled', content: 'Error: cancelled: gone' });
  });

  describe('retries', () => {
    const flaky = (failures: number, error: () => Error = () => new Error('flaky')) => {
      const attempts: number[] = [];
      const tool = defineTool({
        name: 'flaky',
        description: 'fails, then works',
        input: z.object({}),
        retry: { attempts: 4, backoffMs: 1 },
        run: (_input, ctx) => {
          attempts.push(ctx.attempt);
          if (ctx.attempt <= failures) throw error();
          return `ok on ${ctx.attempt}`;
        },
      });
      return { tool, attempts };
    };

    it('retries a retryable tool when the batch asks for it', async () => {
      const { tool, attempts } = flaky(2);
      const result = await run(tool, callOf('flaky', {}, { failurePolicy: 'retry' }));
      expect(result).toMatchObject({ outcome: 'ok', content: 'ok on 3', attempts: 3 });
      expect(attempts).toEqual([1, 2, 3]);
    });

    it('runs once without failurePolicy retry', async () => {
      const { tool, attempts } = flaky(2);
      const result = await run(tool, callOf('flaky', {}));
      expect(result).toMatchObject({ outcome: 'error', content: 'Error: flaky', attempts: 1 });
      expect(attempts).toEqual([1]);
    });

    it("stops at the batch's maxRetries and at the tool's attempts, whichever is fewer", async () => {
      const few = flaky(10);
      expect(
        (await run(few.tool, callOf('flaky', {}, { failurePolicy: 'retry', maxRetries: 1 }))).attempts,
      ).toBe(2);
      const many = flaky(10);
      const result = await run(many.tool, callOf('flaky', {}, { failurePolicy: 'retry', maxRetries: 20 }));
      expect(result).toMatchObject({ outcome: 'error', attempts: 4 });
    });

    it('does not retry a NonRetryableError', async () => {
      const { tool, attempts } = flaky(10, () => new NonRetryableError('bad request'));
      const result = await run(tool, callOf('flaky', {}, { failurePolicy: 'retry' }));
      expect(result).toMatchObject({ outcome: 'error', content: 'Error: bad request', attempts: 1 });
      expect(attempts).toEqual([1]);
    });

    it('a timeout during the back-off answers timeout, not another attempt', async () => {
      const slowBackoff = defineTool({
        name: 'slow',
        description: 'fails with a long back-off',
        input: z.object({}),
        retry: { attempts: 3, backoffMs: 60_000 },
        run: () => {
          throw new Error('nope');
        },
      });
      const result = await run(slowBackoff, callOf('slow', {}, { failurePolicy: 'retry', timeoutMs: 50 }));
      expect(result).toMatchObject({ outcome: 'timeout', attempts: 1 });
    });
  });
});
