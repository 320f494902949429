/** TOOLQ_TOOL_SETS as loadConfig reads it: named tool sets, and a message naming the entry for a bad one. */
import { describe, expect, it } from 'vitest';
import { loadConfig, ToolqError } from '../../src/index.ts';

const load = (value: string | undefined) => loadConfig({ TOOLQ_TOOL_SETS: value });

describe('TOOLQ_TOOL_SETS', () => {
  it('is empty when unset', () => {
    expect(load(undefined).toolSets).toEqual(new Map());
  });

  it('reads `name:tool,tool; name:tool`, in the order written, spaces ignored', () => {
    expect(load(' support : lookup_order, issue_refund ;research:web_fetch;').toolSets).toEqual(
      new Map([
        ['support', ['lookup_order', 'issue_refund']],
        ['research', ['web_fetch']],
      ]),
    );
  });

  it.each([
    ['support', 'entry 1 is not name:tool,tool,…'],
    ['a:x;a:y', 'entry 2: tool set a is named twice'],
    ['sup port:x', 'entry 1: the set name must be 1-64 letters, digits, _ . -'],
    ['support:x,,y', 'entry 1 (tool set support): "" is not a tool name (1-64 letters, digits, _ -)'],
    ['support:x,x', 'entry 1 (tool set support): x is named twice'],
  ])('%j is refused naming the entry', (value, why) => {
    let thrown: unknown;
    try {
      load(value);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ToolqError);
    expect(thrown).toMatchObject({
      code: 'CONFIG_INVALID',
      message: `invalid environment: TOOLQ_TOOL_SETS: ${why}`,
    });
  });
});

describe('TOOLQ_JOB_HISTORY_MS, TOOLQ_JOB_HISTORY_COUNT', () => {
  it('default to 5 minutes and 1,000 a queue; 0 is allowed (removed at once)', () => {
    expect(loadConfig({})).toMatchObject({ jobHistoryMs: 300_000, jobHistoryCount: 1_000 });
    expect(loadConfig({ TOOLQ_JOB_HISTORY_MS: '0' })).toMatchObject({ jobHistoryMs: 0 });
    expect(() => loadConfig({ TOOLQ_JOB_HISTORY_COUNT: '-1' })).toThrow(/TOOLQ_JOB_HISTORY_COUNT/);
  });
});
