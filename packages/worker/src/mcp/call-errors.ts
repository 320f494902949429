/**
 * How a failed MCP request is told apart (session lost, server unreachable) and described to the
 * model: a message that names the server and what happened, never the SDK's internals.
 */
import { SdkError, SdkErrorCode, SdkHttpError } from '@modelcontextprotocol/client';

/** A call that could not reach the server (or lost it); retryable under the `retry` policy. */
export class McpUnavailableError extends Error {
  override name = 'McpUnavailableError';
}

export function causeText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

export function isSessionLost(err: unknown): boolean {
  if (!(err instanceof SdkHttpError)) return false;
  // 404 is the spec's answer for an unknown session; several servers answer 400 "No valid session ID".
  return err.status === 404 || (err.status === 400 && /session/i.test(err.message));
}

export function isConnectionClosed(err: unknown): boolean {
  return err instanceof SdkError && err.code === SdkErrorCode.ConnectionClosed;
}

export function isUnreachable(err: unknown): boolean {
  return err instanceof TypeError || (err instanceof SdkError && err.code === SdkErrorCode.SendFailed);
}

/** A message the model can act on, instead of the SDK's internals. */
export function describeCallError(server: string, err: unknown, reason: string): Error {
  if (err instanceof SdkError) {
    switch (err.code) {
      case SdkErrorCode.ConnectionClosed:
        return new McpUnavailableError(
          `MCP server ${server} went away while the call ran (${reason || 'connection closed'}); the worker is restarting it`,
        );
      case SdkErrorCode.RequestTimeout:
        return new Error(`MCP server ${server} did not answer in time`);
      default:
        return new McpUnavailableError(`MCP server ${server}: ${causeText(err)}`);
    }
  }
  if (err instanceof TypeError)
    return new McpUnavailableError(`MCP server ${server} is unreachable: ${causeText(err)}`);
  // A JSON-RPC error from the server (unknown tool, invalid params, internal error): its message.
  return new Error(`MCP server ${server}: ${causeText(err)}`);
}
