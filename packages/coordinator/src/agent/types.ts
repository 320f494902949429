/**
 * The public vocabulary of the agent loop: its options, its result, and the events it reports.
 * The Messages API types are the SDK's beta ones throughout, because the advisor tool and the
 * per-iteration usage that tells executor and advisor apart exist only there.
 */
import type Anthropic from '@anthropic-ai/sdk';
import type { FailurePolicy, Logger, Outcome } from '@toolq/shared';
import type { ApprovalOptions } from '../approvals/approval-options.ts';
import type { BatchResult } from '../batch-result.ts';
import type { Dispatcher, DispatchOptions, ToolUse } from '../dispatcher.ts';

export type BetaMessage = Anthropic.Beta.BetaMessage;
export type BetaMessageParam = Anthropic.Beta.BetaMessageParam;
export type BetaToolUnion = Anthropic.Beta.BetaToolUnion;
export type BetaStopReason = Anthropic.Beta.BetaStopReason;

/** What the loop needs of a Dispatcher (a real one in production and in tests). */
export type AgentDispatcher = Pick<Dispatcher, 'catalog' | 'metrics'> & {
  /** The loop sends tool_use blocks only (a Dispatcher also takes a response's whole content). */
  dispatch(toolUses: readonly ToolUse[], options?: DispatchOptions): Promise<BatchResult>;
  /** Needed to resume a durable run whose calls another coordinator sent. */
  collect?: Dispatcher['collect'];
};

export interface AdvisorOptions {
  /** The stronger model the executor consults inside the same API call, e.g. `claude-opus-5-5`. */
  model: string;
  /** Most advisor calls per API request. Default: the API's own limit. */
  maxUses?: number;
  /** Cap on the advisor's output per call. Default: the advisor model's own cap. */
  maxTokens?: number;
}

export interface AgentOptions {
  dispatcher: AgentDispatcher;
  /** Default: a client built from `apiKey`/`baseURL`, else ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL. */
  client?: Anthropic;
  apiKey?: string;
  baseURL?: string;
  /**
   * How long one model request may take to answer (its response headers: a streamed turn's first
   * byte, a JSON turn's whole answer); the SDK retries a timed-out request twice. Default
   * TOOLQ_MODEL_TIMEOUT_MS's (120 s), or a given `client`'s own.
   */
  modelTimeoutMs?: number;
  /** Executor model. Default: TOOLQ_MODEL, else DEFAULT_MODEL. */
  model?: string;
  system?: string | Anthropic.Beta.BetaTextBlockParam[];
  /** The user's request; used when `messages` is not given. */
  prompt?: string;
  /** A conversation to continue (copied, never mutated). Takes precedence over `prompt`. */
  messages?: readonly BetaMessageParam[];
  /**
   * Catalog tools offered to the model, required: names (`[]` for none; a diagnostics tool is
   * offered only when named), or `'all'`, an explicit opt-in to every tool with a live worker except
   * the `diag_*` diagnostics tools, including tools added to the fleet later (an MCP server's).
   */
  tools: 'all' | readonly string[];
  /** Server-side tools (web search, …) added as given; the API runs them, toolq never enqueues them. */
  serverTools?: readonly BetaToolUnion[];
  /** Model calls before the run stops with `max_iterations`. Default 15 (as the seed). */
  maxIterations?: number;
  /** `max_tokens` of each request. Default 4096. */
  maxTokens?: number;
  /**
   * A response cut inside a `tool_use` block is asked again with `max_tokens` doubled, up to this.
   * Default 4 × maxTokens.
   */
  maxTokensCeiling?: number;
  stopSequences?: string[];
  /** Stream responses (SSE). Default true: it is what makes early dispatch possible. */
  stream?: boolean;
  /** With streaming, dispatch each `tool_use` at its `content_block_stop`. Default true. */
  earlyDispatch?: boolean;
  /** Per-call timeout; a tool's own smaller timeout still wins. Default: each tool's own. */
  timeoutMs?: number;
  /** Default `continue`. `abort` cancels the other calls of a turn on the first failure. */
  failurePolicy?: FailurePolicy;
  /** With `retry`: re-runs per call. Default: the tool's own policy. */
  maxRetries?: number;
  /** Every batch of the run, within its app (DispatchOptions.priority). Default 0. */
  priority?: number;
  /** Who the run acts for: every tool call of the run reads it as `ctx.context` (DispatchOptions.context). */
  context?: Record<string, unknown>;
  /** Calls that wait for a person's approval (DispatchOptions.approval, docs/approvals.md). */
  approval?: ApprovalOptions;
  advisor?: AdvisorOptions;
  /** Progress events; a listener that throws is logged, never breaks the run. */
  onEvent?: (event: AgentEvent) => void;
  /** Aborting cancels the model request and every call in flight; runAgent rejects with CANCELLED. */
  signal?: AbortSignal;
  /** Default: a pino logger named `toolq-agent`. */
  logger?: Logger;
  /** Makes the run resumable: where to start from, and where to save each step (durable runs). */
  persistence?: AgentPersistence;
}

/** Where one tool_use of a turn went: the batch and its place in it. */
export interface BatchRef {
  /** The batch's name (given to dispatch() as `batchName`), not its uid; saved in checkpoints as is. */
  batchId: string;
  index: number;
}

/** A model response whose tool calls were sent but whose results are not saved yet. */
export interface PendingTurn {
  iteration: number;
  message: BetaMessage;
  /** Epoch ms, as TurnResponse has them. */
  startedAt: number;
  firstByteAt?: number;
  endedAt: number;
  usage: { executor: TokenCounts; advisor: TokenCounts };
  toolUses: ToolUse[];
  /** By tool_use id: every call's batch, decided before any of them can be lost. */
  refs: Record<string, BatchRef>;
}

/** Everything runAgent needs to carry on where it left off; plain JSON. */
export interface AgentCheckpoint {
  /** Epoch ms the run first started. */
  startedAt: number;
  /** The last iteration whose work is complete in `messages` (0 before the first). */
  iteration: number;
  messages: BetaMessageParam[];
  iterations: IterationStats[];
  calls: ToolCallRecord[];
  usage: UsageReport;
  maxTokens: number;
  finalMessage?: BetaMessage;
  pending?: PendingTurn;
}

/** What a durable run gives the loop. A hook that throws stops the run where it is. */
export interface AgentPersistence {
  /** Resume from here instead of from `prompt`/`messages`. */
  checkpoint?: AgentCheckpoint;
  /** Awaited before each model request: nothing is sent to the model unless it resolves. */
  beforeModelRequest(event: Extract<AgentEvent, { type: 'model_request' }>): Promise<void>;
  /** Awaited after each model response and after each turn's tool results. */
  save(checkpoint: AgentCheckpoint): Promise<void>;
  /**
   * The name of the n-th batch (0-based) of an iteration's calls (`toolUseIds`, in order), not its
   * uid; new for every call, unless an earlier owner of the run started a batch of exactly these
   * calls: then its name, so that they are collected rather than run again (see beforeDispatch).
   */
  batchId(iteration: number, n: number, toolUseIds: readonly string[]): string;
  /**
   * Awaited before each dispatch of a named batch: nothing is enqueued unless it resolves (a
   * durable run's owner confirms it still owns the run). True: the name may have been dispatched
   * already, by an earlier owner; the batch is collected first and sent only if nobody has it.
   */
  beforeDispatch?(batchName: string): Promise<boolean>;
  /** The app the run's batches belong to. Default `default`. */
  app?: string;
}

/** How a run ended. */
export type AgentStatus =
  | 'end_turn'
  | 'stop_sequence'
  | 'max_tokens'
  | 'refusal'
  | 'model_context_window_exceeded'
  | 'max_iterations';

export interface TokenCounts {
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
}

export type ModelRole = 'executor' | 'advisor';

export interface ModelUsage extends TokenCounts {
  model: string;
  role: ModelRole;
  /** Inferences counted (model turns for the executor, consultations for the advisor). */
  calls: number;
}

export interface UsageReport {
  executor: TokenCounts;
  advisor: TokenCounts;
  byModel: ModelUsage[];
}

export interface ToolCallRecord {
  iteration: number;
  toolUseId: string;
  name: string;
  input: unknown;
  outcome: Outcome;
  isError: boolean;
  worker?: string;
  pool?: string;
  attempts: number;
  queueWaitMs?: number;
  /** Run time on the worker. */
  runMs?: number;
  /** Dispatch → answer. */
  latencyMs: number;
  /** Milliseconds after the run started when the call was dispatched. */
  dispatchedAtMs: number;
  /** Dispatched before the model's message ended (streaming early dispatch). */
  early: boolean;
}

/** What the loop did with a model response. */
export type IterationAction = 'tools' | 'continue' | 'retry_max_tokens' | 'final';

export interface IterationStats {
  iteration: number;
  stopReason: BetaStopReason | null;
  action: IterationAction;
  maxTokens: number;
  /** Request sent, in ms after the run started. */
  modelStartMs: number;
  /** Request → first byte of the stream (streaming only). */
  firstByteMs?: number;
  /** Request → complete message (message_stop). */
  modelMs: number;
  toolCalls: number;
  /** First dispatch → last result. */
  toolWallMs: number;
  /** message_stop → last result: what the tools added to the turn. */
  toolWaitMs: number;
  /** How much earlier than message_stop the first tool was dispatched (0 without early dispatch). */
  headStartMs: number;
  /** Server tool calls the API ran in this response (advisor, web search, …). */
  serverToolUses: number;
  usage: { executor: TokenCounts; advisor: TokenCounts };
}

export interface RunStats {
  wallMs: number;
  /** Sum of model response times. */
  modelMs: number;
  /** Sum over turns of first dispatch → last result. */
  toolWallMs: number;
  /** Sum over turns of message_stop → last result. */
  toolWaitMs: number;
  toolCalls: number;
  /** Sum of every call's own time (run time on its worker, else its latency): the sequential cost. */
  sumToolMs: number;
  /** sumToolMs / toolWallMs: how much running the calls in parallel saved (1 without tools). */
  speedup: number;
  /** Sum over turns of headStartMs. */
  headStartMs: number;
}

export interface AgentResult {
  status: AgentStatus;
  /** The final text; `Maximum iterations reached` when the run ran out of iterations. */
  text: string;
  /** With `stop_sequence`: the sequence that matched. */
  stopSequence?: string;
  /** With `refusal`: the API's details. */
  stopDetails?: Anthropic.Beta.BetaRefusalStopDetails;
  /**
   * The whole conversation: every assistant message unchanged, each followed by one user message
   * with its tool results in order. A response cut inside a tool_use is left out (it was asked again).
   */
  messages: BetaMessageParam[];
  /** The last response received. */
  finalMessage: BetaMessage | undefined;
  iterations: IterationStats[];
  calls: ToolCallRecord[];
  usage: UsageReport;
  stats: RunStats;
  model: string;
  advisorModel?: string;
}

interface EventBase {
  iteration: number;
  /** Milliseconds after the run started. */
  atMs: number;
}

export type AgentEvent =
  | (EventBase & { type: 'model_request'; model: string; stream: boolean; maxTokens: number })
  | (EventBase & {
      type: 'model_response';
      stopReason: BetaStopReason | null;
      modelMs: number;
      firstByteMs?: number;
      toolUses: number;
      usage: { executor: TokenCounts; advisor: TokenCounts };
    })
  | (EventBase & { type: 'server_tool'; id: string; name: string })
  | (EventBase & {
      type: 'tool_start';
      toolUseId: string;
      name: string;
      input: unknown;
      early: boolean;
      /** The name of the batch it went in, when the run names its batches (durable runs). */
      batchId?: string;
    })
  | (EventBase & { type: 'tool_finish'; call: ToolCallRecord })
  /** A running call's progress (`ctx.reportProgress` in the tool), at most a few a second per call. */
  | (EventBase & {
      type: 'tool_progress';
      toolUseId: string;
      progress: number;
      total?: number;
      message?: string;
    })
  | (EventBase & { type: 'max_tokens_retry'; maxTokens: number });

export type AgentEventType = AgentEvent['type'];
