/**
 * The transport of one configured server, and what its end says about why a server is gone.
 */
import {
  SdkError,
  SdkErrorCode,
  StreamableHTTPClientTransport,
  type Transport,
} from '@modelcontextprotocol/client';
import type { Logger } from '@toolq/shared';
import { causeText } from './call-errors.ts';
import type { McpServerConfig } from './config.ts';
import { ProcessGroupStdioTransport } from './stdio-transport.ts';

export function createTransport(config: McpServerConfig, logger: Logger): Transport {
  if (config.transport === 'http') {
    return new StreamableHTTPClientTransport(new URL(config.url), {
      requestInit: { headers: config.headers },
    });
  }
  let skipped = 0;
  return new ProcessGroupStdioTransport({
    command: config.command,
    args: config.args,
    env: config.env,
    cwd: config.cwd,
    onStderrLine: (line) => logger.debug({ stderr: line }, 'MCP server stderr'),
    // A server that logs to stdout does so on every call: said once at warn, then at debug.
    onSkippedLine: (reason, line) => {
      skipped++;
      if (skipped === 1) {
        logger.warn(
          { reason, line },
          'MCP server wrote a line to stdout that is not JSON-RPC (skipped; it should log to stderr); more such lines are logged at debug',
        );
      } else logger.debug({ reason, line, skipped }, 'MCP server stdout line skipped');
    },
  });
}

/** A stdio server whose process has already ended. */
export function transportClosed(transport: Transport): boolean {
  return transport instanceof ProcessGroupStdioTransport && transport.exitReason !== undefined;
}

export function exitReason(transport: Transport): string {
  if (transport instanceof ProcessGroupStdioTransport) {
    return `the server process ${transport.exitReason ?? 'closed its connection'}`;
  }
  return 'the connection closed';
}

export function describeStartFailure(err: unknown, transport: Transport, startupTimeoutMs: number): string {
  if (transport instanceof ProcessGroupStdioTransport && transport.exitReason) {
    return `the server process ${transport.exitReason} before it finished the MCP handshake`;
  }
  if (err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout) {
    return `no answer to the MCP handshake within ${startupTimeoutMs} ms`;
  }
  return causeText(err);
}

/** The end of a stdio server's stderr, for the log line that says it failed. */
export function stderrOf(transport: Transport | undefined): string {
  return transport instanceof ProcessGroupStdioTransport ? transport.stderr.slice(-500) : '';
}
