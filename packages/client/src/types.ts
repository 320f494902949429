/**
 * The HTTP API's bodies as the client sends and receives them (snake_case, as on the wire; see
 * docs/openapi.json). Written here rather than imported: the client depends on nothing of toolq.
 */

/**
 * A `tool_use` block. The SDK's `ToolUseBlock` objects fit as they are (`type`, `caller` and any
 * further fields are sent along and ignored by the server).
 */
export interface ToolUseLike {
  id: string;
  name: string;
  input: unknown;
  type?: string;
}

export type FailurePolicy = 'continue' | 'abort' | 'retry';
export type Outcome = 'ok' | 'error' | 'timeout' | 'invalid_input' | 'unknown_tool' | 'cancelled';

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

export interface CallStats {
  toolUseId: string;
  tool: string;
  pool?: string;
  outcome: Outcome;
  worker?: string;
  attempts: number;
  queueWaitMs?: number;
  runMs?: number;
  latencyMs: number;
}

export interface ToolBatch {
  batch_id: string;
  tool_results: ToolResultBlock[];
  stats: { wall_ms: number; slowest_run_ms: number; overhead_ms: number; calls: CallStats[] };
}

export interface CatalogTool {
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
  timeoutMs: number;
  retry?: { attempts: number; backoffMs: number };
  pools: string[];
  liveWorkers: number;
}

export interface PerformanceReport {
  window: { calls: number };
  tools: { tool: string; calls: number; ok: number; avgMs: number; p95Ms: number; maxMs: number }[];
  calls: number;
  succeeded: number;
  successRate: number;
}

export interface MessageParam {
  role: 'user' | 'assistant';
  content: string | Record<string, unknown>[];
}

/** POST /v1/runs. Give exactly one of `prompt` and `messages`. */
export interface RunRequest {
  prompt?: string;
  messages?: MessageParam[];
  system?: string;
  model?: string;
  /** Tool names from the catalog; default: every tool with a live worker. */
  tools?: string[];
  max_iterations?: number;
  max_tokens?: number;
  stream?: boolean;
  timeout_ms?: number;
  failure_policy?: FailurePolicy;
}

export interface RunCreated {
  run_id: string;
  status: 'running';
}

export type AgentStatus =
  | 'end_turn'
  | 'stop_sequence'
  | 'max_tokens'
  | 'refusal'
  | 'model_context_window_exceeded'
  | 'max_iterations';

export type Run =
  | { run_id: string; status: 'running'; elapsed_ms: number }
  | {
      run_id: string;
      status: 'done';
      elapsed_ms: number;
      result: {
        status: AgentStatus;
        text: string;
        model: string;
        iterations: number;
        calls: Record<string, unknown>[];
        usage: Record<string, unknown>;
        stats: Record<string, unknown>;
        messages: MessageParam[];
      };
    }
  | { run_id: string; status: 'failed'; elapsed_ms: number; error: { code: string; message: string } };
