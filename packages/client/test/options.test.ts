/** The client checks every option where it is given, before any request (no server needed). */
import { describe, expect, it } from 'vitest';
import { ToolqClient, ToolqOptionError } from '../src/index.ts';

const never: typeof fetch = () => Promise.reject(new Error('no request may be sent'));
const client = new ToolqClient({ baseUrl: 'http://127.0.0.1:1', fetch: never });
const uses = [{ id: 'toolu_1', name: 'echo', input: {} }];

async function refusal(work: Promise<unknown>): Promise<ToolqOptionError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ToolqOptionError);
  expect((err as ToolqOptionError).code).toBe('INVALID_OPTION');
  return err as ToolqOptionError;
}

describe('client options', () => {
  it.each([
    [
      { baseUrl: 'http://h', timeoutMS: 5 },
      'timeoutMS',
      /"timeoutMS" is not an option \(did you mean timeoutMs\?\)/,
    ],
    [
      { baseUrl: '127.0.0.1:8080' },
      'baseUrl',
      /baseUrl must be an http:\/\/ or https:\/\/ URL, got "127.0.0.1:8080"/,
    ],
    [
      { baseUrl: 'http://h', retry: { attempts: 0 } },
      'retry.attempts',
      /retry.attempts must be a whole number >= 1, got 0/,
    ],
    [{ baseUrl: 'http://h', token: '' }, 'token', /token must be a non-empty string/],
    [{}, 'baseUrl', /baseUrl is required/],
  ])('new ToolqClient(%j) throws naming %s', (options, option, message) => {
    let thrown: unknown;
    try {
      new ToolqClient(options as never);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ToolqOptionError);
    expect((thrown as ToolqOptionError).option).toBe(option);
    expect((thrown as ToolqOptionError).message).toMatch(message);
  });

  it('createToolBatch refuses a failure policy that is not one, and sends nothing', async () => {
    const err = await refusal(client.createToolBatch(uses, { failurePolicy: 'contineu' as 'continue' }));
    expect(err.option).toBe('failurePolicy');
    expect(err.message).toBe(
      'createToolBatch options: failurePolicy must be one of continue, abort, retry, got "contineu"',
    );
  });

  it('createToolBatch refuses a priority outside -10..10, and sends nothing', async () => {
    for (const priority of [11, -11, 2.5]) {
      const err = await refusal(client.createToolBatch(uses, { priority }));
      expect(err.option).toBe('priority');
      expect(err.message).toBe(
        `createToolBatch options: priority must be a whole number from -10 to 10 (higher first), got ${priority}`,
      );
    }
  });

  it('names unknown options of every call', async () => {
    const typo = { timeoutMS: 5 } as never;
    expect((await refusal(client.createToolBatch(uses, typo))).option).toBe('timeoutMS');
    expect((await refusal(client.listTools(typo))).message).toMatch(
      /^GET \/v1\/tools options: "timeoutMS" is not an option \(did you mean timeoutMs\?\); the options are signal, timeoutMs, retry$/,
    );
    expect((await refusal(client.getRun('r', { retry: { attempt: 2 } } as never))).option).toBe(
      'retry.attempt',
    );
    expect(
      (await refusal(client.createRun({ prompt: 'p', tools: [] }, { idempotencykey: 'k' } as never))).message,
    ).toMatch(/did you mean idempotencyKey/);
    expect((await refusal(client.listRuns({ limit: 0 }))).option).toBe('limit');
    expect((await refusal(client.createToolBatch(uses, { batchId: 'a b' }))).option).toBe('batchId');
    expect((await refusal(client.createToolBatch(uses, { batchTimeoutMs: 0 }))).option).toBe(
      'batchTimeoutMs',
    );
    expect((await refusal(client.createToolBatch(uses, { context: ['u-1'] as never }))).message).toMatch(
      /context must be a plain JSON object, got an array/,
    );
  });

  it('takes every documented option, and undefined as not given', () => {
    expect(
      () =>
        new ToolqClient({
          baseUrl: 'https://h:8080/',
          token: 't',
          timeoutMs: 1_000,
          retry: { attempts: 1, initialDelayMs: 0, maxDelayMs: 10 },
          onRetry: () => undefined,
          fetch: never,
        }),
    ).not.toThrow();
    expect(() => new ToolqClient({ baseUrl: 'http://h', token: undefined })).not.toThrow();
  });
});
