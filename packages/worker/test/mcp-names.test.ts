/**
 * Fleet names against a real server (the fixture, started in-process through startMcpTools): long
 * and odd MCP names become valid, stable names; a clash (with a tool module's tool or another MCP
 * tool) is skipped and logged, not fatal.
 */
import type { Logger, ToolRunContext } from '@toolq/shared';
import { createRegistry, TOOL_NAME_PATTERN } from '@toolq/shared/internal';
import { describe, expect, it } from 'vitest';
import { testLogger } from '../../../test-support/logger.ts';
import { parseMcpConfig } from '../src/mcp/config.ts';
import { startMcpTools } from '../src/mcp/mcp-tools.ts';
import { FIXTURE, NODE } from './mcp-harness.ts';

/** What a worker hands a tool for one call (these tests call MCP tools directly). */
const toolContext = (): ToolRunContext => ({
  signal: new AbortController().signal,
  attempt: 1,
  toolUseId: 't',
  idempotencyKey: 't',
  batchUid: 'b',
  reportProgress: () => undefined,
  batchId: 'b',
  app: 'default',
  context: {},
});

/** Warnings as messages; the MCP source logs through a child, so children record here too. */
function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const base = testLogger();
  const logger = new Proxy(base, {
    get(target, prop, receiver) {
      if (prop === 'child') return () => logger;
      if (prop === 'warn')
        return (obj: unknown, msg?: string) => {
          warnings.push(typeof obj === 'string' ? obj : (msg ?? ''));
        };
      return Reflect.get(target, prop, receiver);
    },
  });
  return { logger, warnings };
}

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
      const output = await tool?.run({}, toolContext());
      // The server was called with the tool's own name; its answer comes back as MCP content.
      expect(output).toMatchObject({ content: [{ type: 'text', text: LONG }] });
      expect(mcp.status()).toEqual([
        expect.objectContaining({ server: 'my.docs', state: 'connected', reason: '' }),
      ]);
    } finally {
      await mcp.close();
    }
  });

  it('a tool named like one of the tool modules is skipped at start-up, logged naming both', async () => {
    const { logger, warnings } = recordingLogger();
    const mcp = await startMcpTools({
      servers: fixture('fx', ''),
      reservedNames: ['fx__pid'],
      registry: createRegistry({ defaultMetrics: false }),
      logger,
    });
    try {
      const names = mcp.tools().map((t) => t.name);
      expect(names).not.toContain('fx__pid');
      expect(names).toContain('fx__slow'); // the server's other tools are served
      expect(warnings).toContainEqual(
        expect.stringMatching(
          /tool "pid" of MCP server "fx" would be served as fx__pid, which is already tool module tool fx__pid: not served/,
        ),
      );
    } finally {
      await mcp.close();
    }
  });

  it('of two tools of one server that would share a name, the second is skipped, naming both', async () => {
    const { logger, warnings } = recordingLogger();
    const mcp = await startMcpTools({
      servers: fixture('fx', 'read.file,read_file'),
      registry: createRegistry({ defaultMetrics: false }),
      logger,
    });
    try {
      expect(mcp.tools().filter((t) => t.name === 'fx__read_file')).toHaveLength(1);
      expect(warnings).toContainEqual(
        expect.stringMatching(
          /tool "read_file" of MCP server "fx" would be served as fx__read_file, which is already tool "read\.file" of MCP server "fx"/,
        ),
      );
      const output = await mcp
        .tools()
        .find((t) => t.name === 'fx__read_file')
        ?.run({}, toolContext());
      expect(output).toMatchObject({ content: [{ type: 'text', text: 'read.file' }] }); // the first keeps the name
    } finally {
      await mcp.close();
    }
  });
});
