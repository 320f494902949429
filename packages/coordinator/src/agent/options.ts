/**
 * Every default of the agent loop, in one place. The environment is read only for what the caller
 * left out (the model and the SDK client), through the shared config.
 */
import Anthropic from '@anthropic-ai/sdk';
import { createLogger, type FailurePolicy, type Logger, loadConfig, ToolqError } from '@toolq/shared';
import { DEFAULTS } from '@toolq/shared/internal';
import type { AdvisorOptions, AgentEvent, AgentOptions, BetaMessageParam, BetaToolUnion } from './types.ts';

/**
 * A current model that the installed SDK (1.14) does not mark deprecated; the seed's
 * `claude-opus-4-5` is, and the SDK warns on every call with it.
 */
export const DEFAULT_MODEL = 'claude-sonnet-5-5';
export const DEFAULT_MAX_ITERATIONS = 15;
export const DEFAULT_MAX_TOKENS = 4096;
/** The seed's answer when the loop runs out of iterations. */
export const MAX_ITERATIONS_TEXT = 'Maximum iterations reached';

export interface ResolvedOptions {
  client: Anthropic;
  baseURL: string | undefined;
  /** Per model request; undefined: the given client's own timeout. */
  modelTimeoutMs: number | undefined;
  model: string;
  system: AgentOptions['system'];
  messages: BetaMessageParam[];
  tools: 'all' | readonly string[];
  serverTools: readonly BetaToolUnion[];
  maxIterations: number;
  maxTokens: number;
  maxTokensCeiling: number;
  stopSequences: string[] | undefined;
  stream: boolean;
  earlyDispatch: boolean;
  dispatch: { timeoutMs?: number; failurePolicy: FailurePolicy; maxRetries?: number };
  advisor: AdvisorOptions | undefined;
  signal: AbortSignal | undefined;
  logger: Logger;
  emit: (event: AgentEvent) => void;
}

export function resolveOptions(o: AgentOptions): ResolvedOptions {
  const needsEnv = o.model === undefined || (o.client === undefined && o.apiKey === undefined);
  const config = needsEnv ? loadConfig() : undefined;
  const baseURL = o.baseURL ?? config?.anthropicBaseUrl;
  const maxTokens = positive('maxTokens', o.maxTokens ?? DEFAULT_MAX_TOKENS);
  const logger = o.logger ?? createLogger({ name: 'toolq-agent' });
  return {
    client: o.client ?? createClient(o.apiKey ?? config?.anthropicApiKey, baseURL),
    baseURL: o.client ? o.client.baseURL : baseURL,
    modelTimeoutMs: positiveOrUndefined(
      'modelTimeoutMs',
      o.modelTimeoutMs ?? (o.client ? undefined : DEFAULTS.modelTimeoutMs),
    ),
    model: o.model ?? config?.model ?? DEFAULT_MODEL,
    system: o.system,
    messages: initialMessages(o),
    tools: o.tools ?? 'all',
    serverTools: o.serverTools ?? [],
    maxIterations: positive('maxIterations', o.maxIterations ?? DEFAULT_MAX_ITERATIONS),
    maxTokens,
    maxTokensCeiling: Math.max(maxTokens, o.maxTokensCeiling ?? maxTokens * 4),
    stopSequences: o.stopSequences,
    stream: o.stream ?? true,
    earlyDispatch: o.earlyDispatch ?? true,
    dispatch: {
      failurePolicy: o.failurePolicy ?? 'continue',
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
      ...(o.maxRetries === undefined ? {} : { maxRetries: o.maxRetries }),
    },
    advisor: o.advisor,
    signal: o.signal,
    logger,
    emit: safeEmitter(o.onEvent, logger),
  };
}

function createClient(apiKey: string | undefined, baseURL: string | undefined): Anthropic {
  if (!apiKey) {
    throw new ToolqError(
      'CONFIG_INVALID',
      'runAgent needs a model: pass `client` or `apiKey`, or set ANTHROPIC_API_KEY ' +
        '(the demo runs offline against its scripted model without one)',
    );
  }
  return new Anthropic({ apiKey, ...(baseURL ? { baseURL } : {}) });
}

function initialMessages(o: AgentOptions): BetaMessageParam[] {
  if (o.messages && o.messages.length > 0) return structuredClone([...o.messages]);
  if (o.prompt !== undefined && o.prompt !== '') return [{ role: 'user', content: o.prompt }];
  throw new ToolqError('INVALID_INPUT', 'runAgent needs a `prompt` or a non-empty `messages`');
}

function positiveOrUndefined(name: string, value: number | undefined): number | undefined {
  return value === undefined ? undefined : positive(name, value);
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ToolqError('INVALID_INPUT', `${name} must be a whole number >= 1, got ${value}`);
  }
  return value;
}

/** Listener errors are logged and swallowed: progress reporting must never break a run. */
function safeEmitter(listener: AgentOptions['onEvent'], logger: Logger): (event: AgentEvent) => void {
  if (!listener) return () => undefined;
  return (event) => {
    try {
      listener(event);
    } catch (err) {
      logger.warn({ err: (err as Error).message, event: event.type }, 'agent event listener threw');
    }
  };
}
