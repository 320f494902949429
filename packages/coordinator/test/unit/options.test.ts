/**
 * Every option of Dispatcher, dispatch() and runAgent() is checked where it is given: a wrong
 * value or an unknown name fails at once with a ToolqError naming it (no Redis is reached).
 */
import { ToolqError } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { checkDispatcherOptions, checkDispatchOptions } from '../../src/dispatch/options.ts';
import { Dispatcher, runAgent } from '../../src/index.ts';

function failure(run: () => unknown): ToolqError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ToolqError);
    return err as ToolqError;
  }
  throw new Error('expected a ToolqError');
}

describe('dispatch() options', () => {
  it('refuses a failure policy that is not one (the issue: contineu ran nothing and timed out)', () => {
    const err = failure(() => checkDispatchOptions({ failurePolicy: 'contineu' }));
    expect(err.code).toBe('INVALID_INPUT');
    expect(err.message).toBe(
      'invalid dispatch() options: failurePolicy must be one of "continue", "abort", "retry", got "contineu"',
    );
  });

  it('names an unknown option, the one it most likely meant, and the known ones', () => {
    const err = failure(() => checkDispatchOptions({ timeoutMS: 5_000 }));
    expect(err.message).toMatch(/"timeoutMS" is not an option \(did you mean timeoutMs\?\)/);
    expect(err.message).toMatch(
      /the options are timeoutMs, failurePolicy, maxRetries, signal, batchName, batchId, app, priority, context, onProgress, approval$/,
    );
  });

  it.each([
    [{ timeoutMs: 0 }, /timeoutMs must be a whole number of ms from 1 to 2147483647 .*, got 0/],
    [{ timeoutMs: '5000' }, /timeoutMs must be .*, got "5000"/],
    [{ maxRetries: 21 }, /maxRetries must be a whole number from 0 to 20, got 21/],
    [{ priority: 11 }, /priority must be a whole number from -10 to 10 \(higher first\), got 11/],
    [{ priority: 1.5 }, /priority must be a whole number from -10 to 10 .*, got 1.5/],
    [{ priority: 'high' }, /priority must be .*, got "high"/],
    [{ signal: {} }, /signal must be an AbortSignal, got an object \(Object\)/],
    [{ batchId: '' }, /batchId must be a non-empty string, got ""/],
    [{ context: ['u-1'] }, /context: Invalid input: expected record, received array/],
    [{ context: { at: new Date(0) } }, /context must hold JSON values only/],
  ])('%j is refused', (options, message) => {
    expect(failure(() => checkDispatchOptions(options)).message).toMatch(message);
  });

  it('refuses a context over 8 KiB as JSON', () => {
    expect(failure(() => checkDispatchOptions({ context: { big: 'x'.repeat(8_200) } })).message).toMatch(
      /context must be at most 8192 bytes as JSON/,
    );
  });

  it('takes every option, and undefined as not given', () => {
    const options = {
      timeoutMs: 1_000,
      failurePolicy: 'abort',
      maxRetries: 0,
      signal: new AbortController().signal,
      batchId: 'b-1',
      app: 'default',
      priority: -10,
      context: { user: 'u-1', scopes: ['read'], depth: { n: 1, ok: true, none: null } },
    } as const;
    expect(checkDispatchOptions(options)).toBe(options);
    expect(checkDispatchOptions({ timeoutMs: undefined, failurePolicy: undefined })).toBeTruthy();
  });

  it('dispatch() rejects before anything is planned', async () => {
    // A Redis nobody listens on: the options are refused before it matters.
    const dispatcher = new Dispatcher({ redisUrl: 'redis://127.0.0.1:1' });
    try {
      const use = { id: 'toolu_1', name: 'echo', input: {} };
      await expect(
        dispatcher.dispatch([use], { failurePolicy: 'contineu' as 'continue' }),
      ).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringMatching(/failurePolicy/) });
      await expect(
        dispatcher.dispatch([use], { timeoutMS: 5 } as unknown as { timeoutMs: number }),
      ).rejects.toThrow(/"timeoutMS" is not an option/);
    } finally {
      await dispatcher.close();
    }
  });
});

describe('Dispatcher options', () => {
  it.each([
    [{ sweepIntervalMS: 10 }, /"sweepIntervalMS" is not an option \(did you mean sweepIntervalMs\?\)/],
    [{ sweepIntervalMs: 0 }, /sweepIntervalMs must be a number of ms from 1 to 2147483647, got 0/],
    [
      { redisUrl: 'localhost:6379' },
      /redisUrl must be a redis:\/\/ or rediss:\/\/ URL, got "localhost:6379"/,
    ],
    [{ redis: { url: 'redis://h' } }, /redis must be a Redis connection config with mode/],
    [{ logger: console }, /logger must be a pino logger/],
    [{ startTimeoutMs: -1 }, /startTimeoutMs must be a whole number of ms/],
    [{ maxBatchResultBytes: 1.5 }, /maxBatchResultBytes must be a whole number of bytes/],
    [{ jobHistoryMs: -1 }, /jobHistoryMs must be a whole number of ms from 0 to 86400000 \(24 h\), got -1/],
    [{ jobHistoryCount: 1.5 }, /jobHistoryCount must be a whole number from 0 to 100000, got 1.5/],
  ])('%j is refused (CONFIG_INVALID)', (options, message) => {
    const err = failure(() => checkDispatcherOptions(options));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/^invalid Dispatcher options: /);
    expect(err.message).toMatch(message);
  });

  it('new Dispatcher() throws before connecting', () => {
    expect(() => new Dispatcher({ prefix: 'toolq', coordinatorID: 'x' } as never)).toThrow(
      /"coordinatorID" is not an option \(did you mean coordinatorId\?\)/,
    );
  });
});

describe('runAgent options', () => {
  const dispatcher = { dispatch: () => Promise.reject(new Error('not reached')), catalog: {}, metrics: {} };

  it.each([
    [
      { failurePolicy: 'contineu' },
      /failurePolicy must be one of "continue", "abort", "retry", got "contineu"/,
    ],
    [{ maxIterations: 0 }, /maxIterations must be a whole number >= 1, got 0/],
    [{ promt: 'hi' }, /"promt" is not an option; the options are dispatcher, client/],
    [{ stream: 'yes' }, /stream: Invalid input: expected boolean, received string/],
    [{ advisor: { model: 'm', maxUse: 2 } }, /advisor: "maxUse" is not an option/],
    [{ tools: 'some' }, /tools must be "all" or an array of tool names, got "some"/],
    [
      { tools: undefined },
      /tools is required: name the tools the model is offered, e.g. `tools: \["get_weather"\]`/,
    ],
  ])('%j is refused before the model is asked', async (extra, message) => {
    const options = { dispatcher, prompt: 'hi', apiKey: 'k', model: 'm', tools: [], ...extra };
    const err = await runAgent(options as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolqError);
    expect((err as ToolqError).code).toBe('INVALID_INPUT');
    expect((err as ToolqError).message).toMatch(/^invalid runAgent options: /);
    expect((err as ToolqError).message).toMatch(message);
  });
});
