/** The job processor's pure decisions: is a call still wanted, and what a job's outcomes make of it. */
import { type CallResult, CONTRACT_VERSION } from '@toolq/shared';
import type { ParsedJobData } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import {
  GIVEN_BACK,
  lateTimeout,
  NOT_SERVED,
  settleJob,
  stillWantedLocally,
} from '../../src/job-processor.ts';
import { WORKER_DEFAULTS } from '../../src/worker-options.ts';

describe('stillWantedLocally', () => {
  const now = 1_000_000;
  const fresh = now - 10;
  const old = now - WORKER_DEFAULTS.freshJobMs - 1;

  it('a fresh call of an uncancelled batch runs without asking Redis', () => {
    expect(stillWantedLocally({ cancelled: false, retried: false, enqueuedAt: fresh, now })).toBe('yes');
  });

  it('a call of a batch announced cancelled is skipped, however fresh or retried', () => {
    expect(stillWantedLocally({ cancelled: true, retried: false, enqueuedAt: fresh, now })).toBe('no');
    expect(stillWantedLocally({ cancelled: true, retried: true, enqueuedAt: old, now })).toBe('no');
  });

  it('a call that waited long enough to have missed a cancel asks Redis', () => {
    expect(stillWantedLocally({ cancelled: false, retried: false, enqueuedAt: old, now })).toBe('ask-redis');
    // The boundary: exactly freshJobMs old is no longer fresh.
    const edge = now - WORKER_DEFAULTS.freshJobMs;
    expect(stillWantedLocally({ cancelled: false, retried: false, enqueuedAt: edge, now })).toBe('ask-redis');
    expect(stillWantedLocally({ cancelled: false, retried: false, enqueuedAt: edge + 1, now })).toBe('yes');
  });

  it('a job that ran before (given back, stalled) always asks Redis, even when fresh', () => {
    expect(stillWantedLocally({ cancelled: false, retried: true, enqueuedAt: fresh, now })).toBe('ask-redis');
  });
});

const result = (toolUseId: string): CallResult => ({
  v: CONTRACT_VERSION,
  toolUseId,
  tool: 't',
  outcome: 'ok',
  content: toolUseId,
  isError: false,
  worker: 'w',
  attempts: 1,
  enqueuedAt: 1,
});

describe('settleJob', () => {
  it('any call given back puts the whole job back, before anything else', () => {
    expect(settleJob([result('a'), NOT_SERVED, GIVEN_BACK], true)).toEqual({ kind: 'give-back' });
    expect(settleJob([GIVEN_BACK], false)).toEqual({ kind: 'give-back' });
  });

  it('a call for a tool served elsewhere delays the job', () => {
    expect(settleJob([result('a'), undefined, NOT_SERVED], true)).toEqual({ kind: 'not-served' });
  });

  it("a single call's job returns its result, or nothing", () => {
    const r = result('a');
    expect(settleJob([r], false)).toEqual({ kind: 'done', value: r });
    expect(settleJob([undefined], false)).toEqual({ kind: 'done', value: undefined });
  });

  it("a chunk returns its calls' results in order, or nothing when all went to the batch record", () => {
    const b = result('b');
    expect(settleJob([undefined, b, undefined], true)).toEqual({
      kind: 'done',
      value: [undefined, b, undefined],
    });
    expect(settleJob([undefined, undefined], true)).toEqual({ kind: 'done', value: undefined });
  });
});

describe('lateTimeout', () => {
  it('answers a call whose deadline passed in the queue as a timeout it never ran', () => {
    const data = {
      v: CONTRACT_VERSION,
      tool: 'slow',
      input: {},
      toolUseId: 'toolu_9',
      deadline: 2,
      timeoutMs: 1_500,
      failurePolicy: 'continue',
      enqueuedAt: 1,
    } satisfies ParsedJobData;
    expect(lateTimeout(data, 'w7')).toEqual({
      v: CONTRACT_VERSION,
      toolUseId: 'toolu_9',
      tool: 'slow',
      outcome: 'timeout',
      content: 'Tool slow timed out after 1.5s',
      isError: true,
      worker: 'w7',
      attempts: 0,
      enqueuedAt: 1,
    });
  });
});
