/**
 * Dispatcher.start() against a Redis that is not there: it fails within startTimeoutMs naming the
 * address (never its password) and the connection's error, or at once when its signal aborts;
 * against a live Redis it starts as before.
 */
import { ToolqError } from '@toolq/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test-support/free-port.ts';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { Dispatcher } from '../src/index.ts';

let live: RedisServer;
let deadPort: number;

beforeAll(async () => {
  live = await startRedisServer();
  deadPort = await freePort(); // nothing listens on it
});
afterAll(async () => {
  await live?.stop();
});

async function failedStart(dispatcher: Dispatcher, signal?: AbortSignal) {
  const startedAt = Date.now();
  const err = await dispatcher.start(signal ? { signal } : {}).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ToolqError);
  return { err: err as ToolqError, ms: Date.now() - startedAt };
}

describe('Dispatcher.start()', () => {
  it('fails within startTimeoutMs against a dead port, naming the address without its password', async () => {
    const dispatcher = new Dispatcher({
      redisUrl: `redis://:s3cret-pass@127.0.0.1:${deadPort}`,
      startTimeoutMs: 500,
      logger: testLogger(),
    });
    const { err, ms } = await failedStart(dispatcher);
    expect(err.code).toBe('REDIS_UNAVAILABLE');
    expect(err.message).toContain(`Redis at redis://127.0.0.1:${deadPort}`);
    expect(err.message).toContain('within 500 ms (startTimeoutMs)');
    expect(err.message).toMatch(/last error: .*ECONNREFUSED/);
    expect(err.message).not.toContain('s3cret');
    expect(ms).toBeGreaterThanOrEqual(490);
    // Bounded, not retrying for ever; the bound leaves room for a loaded machine (a 3 s one did not).
    expect(ms).toBeLessThan(20_000);
    // A failed start leaves the Dispatcher closed: nothing keeps reconnecting.
    await expect(dispatcher.dispatch([{ id: 'a', name: 'x', input: {} }])).rejects.toMatchObject({
      code: 'SHUTTING_DOWN',
    });
  });

  it('stops at once when its signal aborts', async () => {
    const dispatcher = new Dispatcher({
      redisUrl: `redis://127.0.0.1:${deadPort}`,
      startTimeoutMs: 60_000,
      logger: testLogger(),
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('deploy cancelled')), 200);
    const { err, ms } = await failedStart(dispatcher, controller.signal);
    expect(err.code).toBe('CANCELLED');
    expect(err.message).toContain(
      `start() was aborted while connecting to Redis at redis://127.0.0.1:${deadPort}`,
    );
    expect(err.cause).toEqual(new Error('deploy cancelled'));
    // At the abort, not at the 60 s startTimeoutMs.
    expect(ms).toBeLessThan(30_000);
  });

  it('an already aborted signal fails before waiting', async () => {
    const dispatcher = new Dispatcher({ redisUrl: live.url, logger: testLogger() });
    const { err, ms } = await failedStart(dispatcher, AbortSignal.abort());
    expect(err.code).toBe('CANCELLED');
    // Not after connecting: against this live Redis a start that did not check the signal succeeds.
    expect(ms).toBeLessThan(10_000);
  });

  it('starts against a live Redis with a signal that is not aborted', async () => {
    const dispatcher = new Dispatcher({ redisUrl: live.url, startTimeoutMs: 5_000, logger: testLogger() });
    try {
      await dispatcher.start({ signal: new AbortController().signal });
      expect(await dispatcher.isReady()).toBe(true);
    } finally {
      await dispatcher.close();
    }
  });
});
