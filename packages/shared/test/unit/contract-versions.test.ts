/**
 * Contract v2 next to v1: producers write v1 jobs (unchanged, so v1 workers run them), workers write
 * v2 results (which may carry MCP content), and this code reads both versions of each.
 */
import { describe, expect, it } from 'vitest';
import { CONTRACT_VERSION, callResultSchema, jobChunkSchema, jobDataSchema } from '../../src/index.ts';
import { JOB_VERSION } from '../../src/internal.ts';

const job = {
  tool: 'echo',
  input: {},
  toolUseId: 'toolu_1',
  deadline: 2e12,
  timeoutMs: 1_000,
  enqueuedAt: 1,
};
const result = {
  toolUseId: 'toolu_1',
  tool: 'echo',
  outcome: 'ok',
  content: 'hi',
  isError: false,
  attempts: 1,
};

describe('contract versions', () => {
  it('is version 2; jobs are still written as version 1', () => {
    expect(CONTRACT_VERSION).toBe(2);
    expect(JOB_VERSION).toBe(1);
  });

  it('reads jobs and chunks of versions 1 and 2, and refuses others naming the field', () => {
    for (const v of [1, 2]) {
      expect(jobDataSchema.safeParse({ v, ...job }).success).toBe(true);
      expect(jobChunkSchema.safeParse({ v, chunk: [{ v, ...job }] }).success).toBe(true);
    }
    const v3 = jobDataSchema.safeParse({ v: 3, ...job });
    expect(v3.error?.issues[0]?.path).toEqual(['v']);
  });

  it("reads a v1 worker's result, and a v2 result with its MCP content", () => {
    expect(callResultSchema.parse({ v: 1, ...result }).mcp).toBeUndefined();
    const mcp = { content: [{ type: 'audio', data: 'UklGRg==', mimeType: 'audio/wav' }] };
    expect(callResultSchema.parse({ v: 2, ...result, mcp }).mcp).toEqual(mcp);
  });
});
