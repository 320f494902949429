/** How an MCP tool is delivered, and which inputs a cache takes for the same. Pure. */
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/delivery/cache.ts';
import type { McpToolqSettings } from '../../src/mcp/config.ts';
import { mcpDelivery } from '../../src/mcp/tool-adapter.ts';

const settings = (delivery?: McpToolqSettings['delivery']) => ({ delivery }) as McpToolqSettings;

describe('an MCP tool’s delivery', () => {
  it('follows its annotations: idempotent or read-only tools may run again, others at most once', () => {
    expect(mcpDelivery({ name: 'get', annotations: { readOnlyHint: true } }, settings())).toBe(
      'at-least-once',
    );
    expect(mcpDelivery({ name: 'put', annotations: { idempotentHint: true } }, settings())).toBe(
      'at-least-once',
    );
    expect(mcpDelivery({ name: 'pay', annotations: {} }, settings())).toBe('at-most-once');
    expect(mcpDelivery({ name: 'pay' }, settings())).toBe('at-most-once');
  });

  it('unless the worker’s config says otherwise, for the server or per tool', () => {
    expect(mcpDelivery({ name: 'pay' }, settings('at-least-once'))).toBe('at-least-once');
    const perTool = settings({ pay: 'at-least-once', get: 'at-most-once' });
    expect(mcpDelivery({ name: 'pay' }, perTool)).toBe('at-least-once');
    expect(mcpDelivery({ name: 'get', annotations: { readOnlyHint: true } }, perTool)).toBe('at-most-once');
    expect(mcpDelivery({ name: 'other' }, perTool)).toBe('at-most-once');
  });
});

describe('the cache’s view of an input', () => {
  it('is the same whatever the order of object keys, at any depth; arrays keep their order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe(
      canonicalJson({ a: { c: null, d: [2, 1] }, b: 1 }),
    );
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
  });
});
