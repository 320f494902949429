/**
 * Fleet names against a real server (the fixture, started in-process through startMcpTools): long
 * and odd MCP names become valid, stable names; a clash with a tool module's tool is refused.
 */
import { ToolqError } from '@toolq/shared';
import { createRegistry, TOOL_NAME_PATTERN } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { parseMcpConfig } from '../src/mcp/config.ts';
import { startMcpTools } from '../src/mcp/mcp-tools.ts';
import { FIXTURE, NODE } from './mcp-harness.ts';

const LONG = `summarise.${'quarterly-report-'.repeat(6)}v2`;

const fixture = (name: string, tools: string) =>
  parseMcpConfig(
    { mcpServers: { [name]: { command: NODE, args: [FIXTURE], env: { FIXTURE_TOOLS: tools } } } },
    {
      source: 'test',
    },
  );

describe('MCP tool names on a real server', () => {
  it('are made valid for the Messages API, long ones cut with a stable hash, and they run', async () => {
    const mcp = await startMcpTools({
      servers: fixture('my.docs', `${LONG},a/b`),
      registry: createRegistry({ defaultMetrics: false }),
      logger: testLogger(),
    });
    try {
      const names = mcp.tools().map((t) => t.name);
      expect(names).toContain('my_docs__a_b');
      const long = names.find((n) => n.startsWith('my_docs__summarise_quarterly'));
      expect(long).toHaveLength(64);
      expect(long).toMatch(/_[0-9a-f]{8}$/);
      expect(names.every((n) => TOOL_NAME_PATTERN.test(n))).toBe(true);
      const tool = mcp.tools().find((t) => t.name === long);
      const output = await tool?.run(
        {},
        {
          signal: new AbortController().signal,
          attempt: 1,
          toolUseId: 't',
          batchId: 'b',
          app: 'default',
          context: {},
        },
      );
      expect(output).toBe(LONG); // the server was called with the tool's own name
      expect(mcp.status()).toEqual([
        expect.objectContaining({ server: 'my.docs', state: 'connected', reason: '' }),
      ]);
    } finally {
      await mcp.close();
    }
  });

  it('a tool named like one of the tool modules is refused at start-up', async () => {
    const started = startMcpTools({
      servers: fixture('fx', ''),
      reservedNames: ['fx__pid'],
      registry: createRegistry({ defaultMetrics: false }),
      logger: testLogger(),
    });
    await expect(started).rejects.toThrow(ToolqError);
    await expect(started).rejects.toThrow(
      /tool "pid" of MCP server "fx" would be served as fx__pid, which is already tool module tool fx__pid/,
    );
  });

  it('two tools of one server that would share a name are refused at start-up, naming both', async () => {
    const started = startMcpTools({
      servers: fixture('fx', 'read.file,read_file'),
      registry: createRegistry({ defaultMetrics: false }),
      logger: testLogger(),
    });
    await expect(started).rejects.toThrow(
      /tool "read_file" of MCP server "fx" would be served as fx__read_file, which is already tool "read\.file" of MCP server "fx"/,
    );
  });
});
