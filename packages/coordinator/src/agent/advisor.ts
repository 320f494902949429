/**
 * The advisor tool: a server-side tool with which a fast executor model consults a stronger
 * advisor model inside the same API call. toolq only declares it and passes its blocks through;
 * the API runs it. Which pairs are allowed is the API's decision (it answers 400 otherwise), so
 * nothing here keeps a table of models that would go stale.
 */
import type Anthropic from '@anthropic-ai/sdk';
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
} from '@anthropic-ai/sdk';
import { ToolqError } from '@toolq/shared';
import { originOf, withoutUrlSecrets } from './model-url.ts';
import type { AdvisorOptions, BetaMessage } from './types.ts';

export const ADVISOR_TOOL_TYPE = 'advisor_20260301';
export const ADVISOR_BETA = 'advisor-tool-2026-03-01';

export function advisorTool(options: AdvisorOptions): Anthropic.Beta.BetaAdvisorTool20260301 {
  return {
    type: ADVISOR_TOOL_TYPE,
    name: 'advisor',
    model: options.model,
    ...(options.maxUses === undefined ? {} : { max_uses: options.maxUses }),
    ...(options.maxTokens === undefined ? {} : { max_tokens: options.maxTokens }),
  };
}

/** Server-side calls in a response (advisor, web search, …): run by the API, never by toolq. */
export function serverToolCalls(message: BetaMessage): { id: string; name: string }[] {
  return message.content.flatMap((block) =>
    block.type === 'server_tool_use' || block.type === 'mcp_tool_use'
      ? [{ id: block.id, name: block.name }]
      : [],
  );
}

export interface ModelErrorContext {
  model: string;
  advisorModel?: string;
  baseURL?: string;
  /** The timeout of each model request, when toolq set it. */
  timeoutMs?: number;
}

/**
 * Turns what the SDK throws into a ToolqError that says what to do. A 400 while the advisor is on
 * names both models, because a pairing the API does not accept is the likeliest cause and the
 * API's own message may name only one of them.
 */
export function modelError(err: unknown, ctx: ModelErrorContext): ToolqError {
  if (err instanceof ToolqError) return err;
  // The base URL can carry a gateway's credentials: nothing of it but its origin is shown.
  const fail = (message: string, keepCause = true) =>
    new ToolqError(
      'MODEL_ERROR',
      withoutUrlSecrets(message, ctx.baseURL),
      keepCause ? { cause: err } : undefined,
    );
  if (err instanceof APIUserAbortError) {
    return new ToolqError('CANCELLED', 'the model request was cancelled', { cause: err });
  }
  if (err instanceof APIConnectionTimeoutError && ctx.timeoutMs !== undefined) {
    const where = ctx.baseURL ? ` at ${originOf(ctx.baseURL)}` : '';
    return fail(
      `the Messages API${where} did not answer within ${ctx.timeoutMs} ms ` +
        '(the model request timeout, TOOLQ_MODEL_TIMEOUT_MS; each retry had as long)',
      false,
    );
  }
  if (err instanceof APIConnectionError) {
    const where = ctx.baseURL ? ` at ${originOf(ctx.baseURL)}` : '';
    // The SDK says only "Connection error."; fetch's reason (refused, a URL it will not send) is the cause.
    const reason = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    // Without the SDK's error as its cause: fetch's error under it names the URL whole.
    return fail(`cannot reach the Messages API${where}: ${err.message}${reason}`, false);
  }
  if (err instanceof APIError) {
    const detail = err.apiMessage ?? err.message;
    const kind = [err.status, err.type].filter((x) => x !== undefined && x !== null).join(' ');
    const request = err.requestID ? ` (request ${err.requestID})` : '';
    if (ctx.advisorModel !== undefined && err.status === 400) {
      const hint = /advis/i.test(detail)
        ? ' The API decides which advisor may advise which executor; pick a stronger advisor or a lighter executor.'
        : '';
      return fail(
        `the Messages API rejected executor model "${ctx.model}" with advisor model "${ctx.advisorModel}" ` +
          `(${kind}): ${detail}${request}.${hint}`,
      );
    }
    return fail(
      `the Messages API failed for model "${ctx.model}" (${kind || 'stream error'}): ${detail}${request}`,
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  return fail(`the model request failed: ${message}`);
}
