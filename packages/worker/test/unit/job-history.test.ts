/** What a completed job keeps for the admin page's history: no caller context, an input cut to 4 KiB. */
import { CONTRACT_VERSION, type JobData } from '@toolq/shared';
import { describe, expect, it } from 'vitest';
import { HISTORY_INPUT_CHARS, historyData, jsonLengthBound } from '../../src/job-history.ts';

const call = (extra: Partial<JobData> = {}): JobData => ({
  v: CONTRACT_VERSION,
  tool: 'lookup',
  input: { id: 42 },
  toolUseId: 'toolu_1',
  deadline: 2_000_000_000_000,
  timeoutMs: 30_000,
  failurePolicy: 'continue',
  enqueuedAt: 1_000,
  ...extra,
});

describe('historyData', () => {
  it('leaves a small call without context as it is (no write)', () => {
    expect(historyData(call())).toBeUndefined();
    expect(
      historyData({ v: CONTRACT_VERSION, chunk: [call(), call({ toolUseId: 'toolu_2' })] }),
    ).toBeUndefined();
  });

  it('drops the caller context and keeps everything else', () => {
    const kept = historyData(call({ context: { user: 'u-1', token: 'secret' } }));
    expect(kept).toEqual(call());
    expect(JSON.stringify(kept)).not.toContain('secret');
  });

  it('cuts an input longer than 4 KiB of JSON to its start, saying how long it was', () => {
    const input = { text: 'y'.repeat(10_000) };
    const kept = historyData(call({ input })) as JobData;
    const shown = kept.input as { toolq_history: string; start: string };
    expect(shown.start).toBe(JSON.stringify(input).slice(0, HISTORY_INPUT_CHARS));
    expect(shown.toolq_history).toBe(
      `the input was ${JSON.stringify(input).length} characters of JSON; the first ${HISTORY_INPUT_CHARS} are kept`,
    );
    // At the limit it is kept whole.
    const edge = { t: 'z'.repeat(HISTORY_INPUT_CHARS - 8) };
    expect(JSON.stringify(edge).length).toBe(HISTORY_INPUT_CHARS);
    expect(historyData(call({ input: edge }))).toBeUndefined();
  });

  it("trims each call of a chunk that needs it and keeps the others' data", () => {
    const chunk = [call(), call({ toolUseId: 'toolu_2', context: { user: 'u-2' } })];
    const kept = historyData({ v: CONTRACT_VERSION, chunk });
    expect(kept).toEqual({ v: CONTRACT_VERSION, chunk: [call(), call({ toolUseId: 'toolu_2' })] });
  });
});

describe('jsonLengthBound: a small input is measured without a copy', () => {
  const values: unknown[] = [
    null,
    true,
    0,
    -1.2345678901234568e-300, // 24 characters of JSON, a number at its longest
    '',
    'plain',
    'quotes " and \\ and \n and \u0001 and é and 😀',
    [],
    [1, 'two', { three: [null, false] }],
    { id: 42, nested: { list: ['a', 'b'], empty: {} }, 'key "quoted"': 'v' },
    { skipped: undefined, kept: 1 },
  ];

  it('is never below the JSON length, whatever the value', () => {
    for (const value of values) {
      const bound = jsonLengthBound(value, Number.POSITIVE_INFINITY);
      expect(bound, JSON.stringify(value)).toBeGreaterThanOrEqual((JSON.stringify(value) ?? '').length);
    }
  });

  it('stops counting past the limit (the caller then measures exactly)', () => {
    const big = { list: Array.from({ length: 10_000 }, (_, i) => ({ i })) };
    const bound = jsonLengthBound(big, HISTORY_INPUT_CHARS);
    expect(bound).toBeGreaterThan(HISTORY_INPUT_CHARS);
    expect(bound).toBeLessThan(HISTORY_INPUT_CHARS + 100);
  });
});
