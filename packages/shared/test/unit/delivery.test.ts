/** What defineTool accepts for delivery and cache, and the idempotency key of a call. Pure. */

import { createHash } from 'node:crypto';
import { defineTool } from '@toolq/shared';
import { idempotencyKeyFor, idempotencyKeyOf, idempotencyKeysOf } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

const base = { name: 'pay', description: 'Pays.', input: z.object({}), run: () => 'ok' };

describe('defineTool: delivery and cache', () => {
  it('takes both modes and a cache; at-least-once is what a tool without `delivery` gets', () => {
    expect(defineTool({ ...base, delivery: 'at-most-once' }).delivery).toBe('at-most-once');
    expect(
      defineTool({ ...base, delivery: 'at-least-once', cache: { ttlMs: 5_000, scope: 'fleet' } }).cache,
    ).toEqual({
      ttlMs: 5_000,
      scope: 'fleet',
    });
  });

  it('refuses a mode it does not know, naming the field', () => {
    expect(() => defineTool({ ...base, delivery: 'exactly-once' as 'at-most-once' })).toThrow(
      /tool "pay": delivery must be 'at-least-once' or 'at-most-once', got "exactly-once"/,
    );
  });

  it('refuses retry or cache on an at-most-once tool: both would run or share what may happen once', () => {
    expect(() => defineTool({ ...base, delivery: 'at-most-once', retry: { attempts: 2 } })).toThrow(/retry/);
    expect(() =>
      defineTool({ ...base, delivery: 'at-most-once', cache: { ttlMs: 1_000, scope: 'app' } }),
    ).toThrow(/cache/);
  });

  it('refuses a malformed cache', () => {
    for (const cache of [
      { ttlMs: 0, scope: 'app' },
      { ttlMs: 1.5, scope: 'app' },
      { ttlMs: 10, scope: 'world' },
    ])
      expect(() => defineTool({ ...base, cache: cache as { ttlMs: number; scope: 'app' } })).toThrow(
        /cache must be \{ ttlMs: a whole number of ms/,
      );
  });
});

describe('idempotency keys', () => {
  const call = { app: 'shop', batchName: 'run.r1.3.1.0', toolUseId: 'toolu_1' };

  it('are the same for the same call and differ when any part differs', () => {
    expect(idempotencyKeyFor(call)).toBe(idempotencyKeyFor({ ...call }));
    const others = [
      { ...call, app: 'other' },
      { ...call, batchName: 'run.r1.3.1.1' },
      { ...call, toolUseId: 'toolu_2' },
    ].map(idempotencyKeyFor);
    expect(new Set([idempotencyKeyFor(call), ...others]).size).toBe(4);
  });

  it("keep one format across versions: the first 32 hex digits of SHA-256 of app, batch name and tool_use id, a batch's hashed once", () => {
    const expected = createHash('sha256').update('shop\nrun.r1.3.1.0\ntoolu_1').digest('hex').slice(0, 32);
    expect(idempotencyKeyFor(call)).toBe(expected);
    const keyOf = idempotencyKeysOf(call);
    expect([keyOf('toolu_1'), keyOf('toolu_2'), keyOf('toolu_1')]).toEqual([
      expected,
      idempotencyKeyFor({ ...call, toolUseId: 'toolu_2' }),
      expected,
    ]);
  });

  it("a job's key is the one its producer set, else derived from the job (plain producers)", () => {
    const data = {
      v: 1 as const,
      tool: 'pay',
      input: {},
      toolUseId: 't1',
      deadline: 2,
      timeoutMs: 1,
      failurePolicy: 'continue' as const,
      enqueuedAt: 1,
    };
    expect(idempotencyKeyOf({ ...data, idempotencyKey: 'given' }, 'job-1')).toBe('given');
    expect(idempotencyKeyOf(data, 'job-1')).toBe(
      idempotencyKeyFor({ app: 'default', batchName: 'job-1', toolUseId: 't1' }),
    );
  });
});
