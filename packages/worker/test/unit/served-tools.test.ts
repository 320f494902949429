/** The served-tools registry: fixed tools, a changing tool source, lookups and catalog specs. */
import { type AnyTool, defineTool, ToolqError } from '@toolq/shared';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { testLogger } from '../../../../test-support/logger.ts';
import { ServedTools, specOf } from '../../src/served-tools.ts';
import type { ToolSource } from '../../src/tool-source.ts';
import { WORKER_DEFAULTS } from '../../src/worker-options.ts';

const tool = (name: string, extra: Partial<AnyTool> = {}): AnyTool =>
  defineTool({
    name,
    description: `the ${name} tool`,
    input: z.object({ q: z.string() }),
    run: () => name,
    ...extra,
  });

/** A tool source whose tools the test sets; it never calls listeners (ServedTools does not subscribe). */
function sourceOf(initial: AnyTool[]): ToolSource & { set(tools: AnyTool[]): void } {
  let current = initial;
  return { tools: () => current, onChange: () => () => undefined, set: (tools) => (current = tools) };
}

describe('ServedTools', () => {
  it('refuses a fixed tool listed twice', () => {
    const make = () =>
      new ServedTools([tool('a'), tool('a')], { defaultTimeoutMs: 1_000, logger: testLogger() });
    expect(make).toThrow(ToolqError);
    expect(make).toThrow('tool a is listed twice');
  });

  it('serves its fixed tools by name before any refresh', () => {
    const a = tool('a');
    const served = new ServedTools([a, tool('b')], { defaultTimeoutMs: 1_000, logger: testLogger() });
    expect(served.get('a')).toBe(a);
    expect(served.has('b')).toBe(true);
    expect(served.has('c')).toBe(false);
    expect(served.get('c')).toBeUndefined();
    expect(served.names()).toEqual(['a', 'b']);
  });

  it("adds the source's tools at refresh and follows their changes, keeping the fixed ones", () => {
    const source = sourceOf([tool('mcp_x')]);
    const served = new ServedTools([tool('a')], { source, defaultTimeoutMs: 1_000, logger: testLogger() });
    expect(served.has('mcp_x')).toBe(false);
    expect(served.refresh().map((s) => s.name)).toEqual(['a', 'mcp_x']);
    expect(served.has('mcp_x')).toBe(true);

    source.set([tool('mcp_y')]);
    expect(served.refresh().map((s) => s.name)).toEqual(['a', 'mcp_y']);
    expect(served.has('mcp_x')).toBe(false);
    expect(served.names()).toEqual(['a', 'mcp_y']);
  });

  it('does not serve a source tool whose name is taken, and says so; the fixed one keeps it', () => {
    const fixed = tool('a');
    const logger = testLogger();
    const warn = vi.spyOn(logger, 'warn');
    const source = sourceOf([tool('a'), tool('b'), tool('b')]);
    const served = new ServedTools([fixed], { source, defaultTimeoutMs: 1_000, logger });
    const specs = served.refresh();
    expect(specs.map((s) => s.name)).toEqual(['a', 'b']);
    expect(served.get('a')).toBe(fixed);
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn).toHaveBeenCalledWith(
      { tool: 'a', servedBy: 'a tool module' },
      expect.stringContaining('serves already: not served'),
    );
    expect(warn).toHaveBeenCalledWith(
      { tool: 'b', servedBy: 'another tool of the tool source' },
      expect.stringContaining('serves already: not served'),
    );
  });

  it('advertises specs with the default timeout and retry back-off filled in', () => {
    const served = new ServedTools(
      [
        tool('plain'),
        tool('own', { timeoutMs: 5_000, retry: { attempts: 3, backoffMs: 50 } }),
        tool('retries', { retry: { attempts: 2 } }),
      ],
      { defaultTimeoutMs: 12_345, logger: testLogger() },
    );
    const specs = new Map(served.specs().map((s) => [s.name, s]));
    expect(specs.get('plain')).toEqual({
      name: 'plain',
      description: 'the plain tool',
      input_schema: expect.objectContaining({ type: 'object', properties: { q: { type: 'string' } } }),
      timeoutMs: 12_345,
    });
    expect(specs.get('own')).toMatchObject({ timeoutMs: 5_000, retry: { attempts: 3, backoffMs: 50 } });
    expect(specs.get('retries')?.retry).toEqual({ attempts: 2, backoffMs: WORKER_DEFAULTS.retryBackoffMs });
    expect(WORKER_DEFAULTS.retryBackoffMs).toBe(200);
    expect(specOf(tool('x'), 9).timeoutMs).toBe(9);
  });
});
