/**
 * Every default of the agent loop, in one place. The environment is read only for what the caller
 * left out (the model and the SDK client), through the shared config.
 */
import Anthropic from '@anthropic-ai/sdk';
import {
  createLogger,
  type FailurePolicy,
  failurePolicySchema,
  type Logger,
  loadConfig,
  ToolqError,
} from '@toolq/shared';
import { callerContextSchema, DEFAULTS } from '@toolq/shared/internal';
import { z } from 'zod';
import { type ApprovalOptions, approvalOptionsSchema } from '../approvals/approval-options.ts';
import { checkOptions, optionRules, rule } from '../dispatch/options.ts';
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
  dispatch: {
    timeoutMs?: number;
    failurePolicy: FailurePolicy;
    maxRetries?: number;
    priority?: number;
    context?: Record<string, unknown>;
    approval?: ApprovalOptions;
  };
  advisor: AdvisorOptions | undefined;
  signal: AbortSignal | undefined;
  logger: Logger;
  emit: (event: AgentEvent) => void;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const atLeastOne = rule<number>((v) => Number.isInteger(v) && (v as number) >= 1, 'a whole number >= 1');
const objects = <T>(what: string) =>
  rule<readonly T[]>((v) => Array.isArray(v) && v.every(isObject), `an array of ${what}`);
const strings = rule<readonly string[]>(
  (v) => Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== ''),
  'an array of non-empty strings',
);

/** What runAgent says to a caller that names no tools. */
export const NAME_YOUR_TOOLS =
  'tools is required: name the tools the model is offered, e.g. `tools: ["get_weather"]` ([] for none); ' +
  "`tools: 'all'` offers every tool a live worker serves (except diag_*), including tools added to the " +
  'fleet later (an MCP server with write tools, too)';

/** Every option of runAgent, checked before anything is sent (INVALID_INPUT); unknown names too. */
const agentOptionsSchema = z.strictObject({
  dispatcher: rule<AgentOptions['dispatcher']>(
    (v) => isObject(v) && typeof v.dispatch === 'function' && isObject(v.catalog),
    'a Dispatcher',
  ),
  client: rule<Anthropic>((v) => isObject(v) && isObject(v.beta), 'an Anthropic client').optional(),
  apiKey: optionRules.text.optional(),
  baseURL: rule<string>(
    (v) => typeof v === 'string' && /^https?:\/\//.test(v) && URL.canParse(v),
    'an http:// or https:// URL',
  ).optional(),
  model: optionRules.text.optional(),
  system: rule<AgentOptions['system']>(
    (v) => typeof v === 'string' || (Array.isArray(v) && v.every(isObject)),
    'a string or an array of text blocks',
  ).optional(),
  prompt: rule<string>((v) => typeof v === 'string', 'a string').optional(),
  messages: rule<readonly BetaMessageParam[]>(
    (v) => Array.isArray(v) && v.every((m) => isObject(m) && (m.role === 'user' || m.role === 'assistant')),
    'an array of messages ({ role: "user" | "assistant", content })',
  ).optional(),
  tools: rule<'all' | readonly string[]>(
    (v) => v === 'all' || (Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== '')),
    '"all" or an array of tool names',
  ).optional(),
  serverTools: objects<BetaToolUnion>('tool definitions').optional(),
  maxIterations: atLeastOne.optional(),
  maxTokens: atLeastOne.optional(),
  maxTokensCeiling: atLeastOne.optional(),
  stopSequences: strings.optional(),
  stream: z.boolean().optional(),
  earlyDispatch: z.boolean().optional(),
  timeoutMs: optionRules.wholeMs.optional(),
  modelTimeoutMs: optionRules.wholeMs.optional(),
  failurePolicy: failurePolicySchema.optional(),
  maxRetries: optionRules.maxRetries.optional(),
  priority: optionRules.priority.optional(),
  context: callerContextSchema.optional(),
  approval: approvalOptionsSchema.optional(),
  advisor: z
    .strictObject({
      model: optionRules.text,
      maxUses: atLeastOne.optional(),
      maxTokens: atLeastOne.optional(),
    } satisfies Record<keyof AdvisorOptions, z.ZodType>)
    .optional(),
  onEvent: rule<AgentOptions['onEvent']>((v) => typeof v === 'function', 'a function').optional(),
  signal: optionRules.signal.optional(),
  logger: optionRules.logger.optional(),
  persistence: rule<AgentOptions['persistence']>(
    (v) =>
      isObject(v) && ['beforeModelRequest', 'save', 'batchId'].every((name) => typeof v[name] === 'function'),
    'an object with beforeModelRequest, save and batchId functions',
  ).optional(),
} satisfies Record<keyof AgentOptions, z.ZodType>);

export function resolveOptions(o: AgentOptions): ResolvedOptions {
  checkOptions(agentOptionsSchema, o, 'invalid runAgent options', 'INVALID_INPUT');
  // Checked apart from the schema to say how to name them (JavaScript callers have no type check).
  if (o.tools === undefined)
    throw new ToolqError('INVALID_INPUT', `invalid runAgent options: ${NAME_YOUR_TOOLS}`);
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
    tools: o.tools,
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
      ...(o.priority === undefined ? {} : { priority: o.priority }),
      ...(o.context === undefined ? {} : { context: o.context }),
      ...(o.approval === undefined ? {} : { approval: o.approval }),
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
