/**
 * The HTTP API's bodies as the client sends and receives them: snake_case, exactly as on the wire
 * (docs/openapi.json), so that what the client answers is what the API documents and what goes to
 * the Messages API unchanged. The client's own options (ToolqClientOptions, CallOptions, …) are
 * camelCase, like any JS API; it maps them to the wire's fields itself. Written here rather than
 * imported: the client depends on nothing of toolq.
 */

import type { ApprovalOutcome } from './approvals.ts';

/**
 * A `tool_use` block (mirrors the coordinator's `ToolUse`). The SDK's `ToolUseBlock` objects fit as they are (`type`, `caller` and any
 * further fields are sent along and ignored by the server).
 */
export interface ToolUseLike {
  id: string;
  name: string;
  input: unknown;
  type?: string;
}

export type FailurePolicy = 'continue' | 'abort' | 'retry';
export type Outcome = 'ok' | 'error' | 'timeout' | 'invalid_input' | 'unknown_tool' | 'cancelled' | 'unknown';

// Shaped as the SDK's TextBlockParam and ImageBlockParam, so that tool_results go into
// `messages` without a cast.
export interface TextBlock {
  type: 'text';
  text: string;
}
export interface ImageBlock {
  type: 'image';
  source:
    | { type: 'base64'; media_type: 'image/jpeg' | 'image/png' | 'image/gif' | 'image/webp'; data: string }
    | { type: 'url'; url: string }
    | { type: 'file'; file_id: string };
}

/** Append `tool_results` as they are, in one user message, after the assistant message. */
export interface ToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content: string | (TextBlock | ImageBlock)[];
  is_error?: true;
}

/** What happened to one call of a batch (`stats.calls`; the coordinator's `callStatsSchema`, http/responses.ts). */
export interface CallStats {
  tool_use_id: string;
  tool: string;
  /** The pool the call was queued on; absent when it never reached a queue. */
  pool?: string;
  outcome: Outcome;
  /** The worker that ran it. */
  worker?: string;
  attempts: number;
  /** Enqueue → start on a worker. */
  queue_wait_ms?: number;
  /** Start → end on the worker. */
  run_ms?: number;
  /** Dispatch → answer known to the coordinator. */
  latency_ms: number;
}

export interface ToolBatch {
  batch_id: string;
  tool_results: ToolResultBlock[];
  stats: { wall_ms: number; slowest_run_ms: number; overhead_ms: number; calls: CallStats[] };
  /** The decisions on the calls that waited for approval: who, when, why. */
  approvals?: ApprovalOutcome[];
}

/** One tool of GET /v1/tools. */
export interface CatalogTool {
  name: string;
  description: string;
  /** The tool's JSON Schema, exactly as the tool declares it. */
  input_schema: Record<string, unknown>;
  timeout_ms: number;
  retry?: { attempts: number; backoff_ms: number };
  /** Which calls wait for a person's approval (docs/approvals.md); absent: none. */
  approval?:
    | 'always'
    | {
        when: {
          field: string;
          above?: number;
          equals?: string | number | boolean;
          in?: (string | number | boolean)[];
        }[];
      };
  pools: string[];
  live_workers: number;
  /** Its pool lets calls wait for a worker to start (scale from zero). */
  waits_for_workers: boolean;
}

/** GET /v1/report (the coordinator's `reportResponseSchema`, http/responses.ts). */
export interface PerformanceReport {
  /** As asked (e.g. `15m`), and the ISO times of the minute buckets read. */
  window: { requested: string; from: string; to: string };
  tools: {
    tool: string;
    calls: number;
    ok: number;
    /** Calls answered outcome `unknown` (at-most-once calls interrupted after they started); absent when none. */
    unknown?: number;
    /** Calls answered `not_started` (flow-controlled calls that never ran); not failures. Absent when none. */
    not_started?: number;
    avg_ms: number;
    p95_ms: number;
    max_ms: number;
  }[];
  calls: number;
  succeeded: number;
  /** Calls answered `not_started`, among `calls`: neither successes nor failures. */
  not_started: number;
  /** succeeded / (calls - not_started), 0..1; 1 when every call (or none) was not started. */
  success_rate: number;
}

export interface MessageParam {
  role: 'user' | 'assistant';
  content: string | Record<string, unknown>[];
}

/**
 * POST /v1/runs. Give exactly one of `prompt` and `messages`, and name the run's tools: `tools`
 * (names from listTools(); `[]` for none) or `tool_set` (a set the coordinator's operator defined
 * in TOOLQ_TOOL_SETS). A run that names neither is refused (400 INVALID_REQUEST).
 */
export type RunRequest = RunRequestFields &
  (
    | { tools: string[]; tool_set?: never }
    | { /** The name of a tool set the operator defined, e.g. `support`. */ tool_set: string; tools?: never }
  );

interface RunRequestFields {
  prompt?: string;
  messages?: MessageParam[];
  system?: string;
  model?: string;
  max_iterations?: number;
  max_tokens?: number;
  stream?: boolean;
  timeout_ms?: number;
  failure_policy?: FailurePolicy;
  /**
   * Every batch of the run, within your app: when a flow-controlled tool has calls waiting, yours
   * start highest priority first. A whole number from -10 to 10; default 0. Stored with the run.
   */
  priority?: number;
  /**
   * Who the run acts for: every tool it calls reads it as `ctx.context` (a JSON object, at most
   * 8,192 bytes as JSON). Stored with the run request in the run's record for the run's retention.
   */
  context?: Record<string, unknown>;
  /** Tools whose calls wait for a person's approval in this run (besides those whose definition asks). */
  approval_tools?: string[];
  /** When a pending approval of the run expires. Default 86 400 000 ms (24 h). */
  approval_timeout_ms?: number;
}

/** Mirrors the coordinator's `RunStatus` (runs/run-store.ts). */
export type RunStatus = 'running' | 'done' | 'failed' | 'cancelled';

export interface RunCreated {
  run_id: string;
  status: RunStatus;
}

export type AgentStatus =
  | 'end_turn'
  | 'stop_sequence'
  | 'max_tokens'
  | 'refusal'
  | 'model_context_window_exceeded'
  | 'max_iterations';

/** GET /v1/runs/{id}. */
export interface Run {
  run_id: string;
  status: RunStatus;
  /** ISO 8601. */
  created_at: string;
  updated_at: string;
  finished_at?: string;
  elapsed_ms: number;
  /** The coordinator running it (or that ran it last). */
  coordinator?: string;
  /** Times another coordinator took it over (a wake from a park is not one). */
  takeovers: number;
  /** ISO 8601; set while the run is parked: it waits for approvals only, no coordinator holds it. */
  parked_at?: string;
  saved_iterations?: number;
  result?: RunResult;
  error?: { code: string; message: string };
}

/** One tool call of a run (`result.calls`). */
export interface RunCall {
  iteration: number;
  tool_use_id: string;
  name: string;
  /** The model's input to the tool, as it was. */
  input: unknown;
  outcome: Outcome;
  is_error: boolean;
  worker?: string;
  pool?: string;
  attempts: number;
  queue_wait_ms?: number;
  run_ms?: number;
  latency_ms: number;
  /** Milliseconds after the run started when the call was dispatched. */
  dispatched_at_ms: number;
  /** Dispatched before the model's message ended (streaming). */
  early: boolean;
}

/** A finished run's result (GET /v1/runs/{id} `result`). */
export interface RunResult {
  status: AgentStatus | (string & {});
  text: string;
  model: string;
  iterations: number;
  calls: RunCall[];
  usage: {
    executor: TokenUsage;
    advisor: TokenUsage;
    by_model: (TokenUsage & { model: string; role: 'executor' | 'advisor'; calls: number })[];
  };
  stats: {
    wall_ms: number;
    model_ms: number;
    tool_wall_ms: number;
    tool_wait_ms: number;
    tool_calls: number;
    sum_tool_ms: number;
    /** sum_tool_ms / tool_wall_ms: what running the calls in parallel saved. */
    speedup: number;
    head_start_ms: number;
  };
  messages: MessageParam[];
}

/** GET /v1/runs: newest first. */
export interface RunList {
  runs: { run_id: string; status: RunStatus; created_at: string; updated_at: string }[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

/** Mirrors the coordinator's `RUN_EVENT_TYPES` (runs/run-events.ts). */
export type RunEventType = RunEventData['type'];

/** What every event's `data` carries: its type again and when it was written (epoch ms). */
interface EventBase<T extends string> {
  type: T;
  at: number;
}

/** Token counts as the Messages API names them. */
export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

/** An event's `data:` JSON, by type (mirrors runs/run-events.ts and RunStore.cancel). */
export type RunEventData =
  | (EventBase<'run_started'> & { coordinator: string; owner_epoch: number })
  | (EventBase<'run_resumed'> & {
      coordinator: string;
      owner_epoch: number;
      saved_iterations: number;
      pending_calls: number;
      idle_ms: number;
      /** Set when this owner woke a parked run: how long it was parked. */
      parked_ms?: number;
    })
  | (EventBase<'run_parked'> & {
      /** The pending approvals it waits for. */
      approval_ids: string[];
      /** Epoch ms: when its job is due if nobody decides (just after the soonest expiry). */
      wake_by: number;
    })
  | (EventBase<'turn_started'> & { iteration: number; model: string; max_tokens: number })
  | (EventBase<'turn_finished'> & {
      iteration: number;
      stop_reason: string | null;
      model_ms: number;
      tool_uses: number;
      usage: TokenUsage & { advisor: TokenUsage };
    })
  | (EventBase<'text'> & { iteration: number; text: string })
  | (EventBase<'tool_started'> & {
      iteration: number;
      tool_use_id: string;
      tool: string;
      early: boolean;
      batch_id?: string;
    })
  | (EventBase<'tool_finished'> & {
      iteration: number;
      tool_use_id: string;
      tool: string;
      worker: string | null;
      duration_ms: number;
      outcome: Outcome;
      is_error: boolean;
    })
  | (EventBase<'tool_progress'> & {
      iteration: number;
      tool_use_id: string;
      progress: number;
      total?: number;
      message?: string;
    })
  | (EventBase<'server_tool'> & { iteration: number; id: string; name: string })
  | (EventBase<'max_tokens_retry'> & { iteration: number; max_tokens: number })
  | (EventBase<'approval_requested'> & {
      approval_id: string;
      tool: string;
      tool_use_id: string;
      input: unknown;
      batch_id: string;
      expires_at: number;
    })
  | (EventBase<'approval_decided'> & {
      approval_id: string;
      tool: string;
      tool_use_id: string;
      decision: 'approve' | 'deny';
      decided_by: string | null;
      decided_at: number | null;
      reason: string;
    })
  | (EventBase<'approval_expired'> & {
      approval_id: string;
      tool: string;
      tool_use_id: string;
      expired_at?: number;
    })
  | (EventBase<'done'> & { status: AgentStatus | (string & {}); text: string })
  | (EventBase<'failed'> & { error: { code: string; message: string } })
  | (EventBase<'cancelled'> & { reason: string });

/**
 * One event of GET /v1/runs/{id}/events: `id` is the SSE `id:` (the stream entry id, `<ms>-<seq>`),
 * `type` its `event:`, `data` its `data:` parsed. Narrow on `type`.
 */
export type RunEvent = {
  [T in RunEventType]: { id: string; type: T; data: Extract<RunEventData, { type: T }> };
}[RunEventType];
