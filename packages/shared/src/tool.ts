import { z } from 'zod';
import { type ApprovalSetting, approvalSettingSchema } from './approval-rule.ts';
import { ToolqError } from './errors.ts';
import { checkDeclaredLimits, type RateLimit } from './flow/limits.ts';
import { type ToolAnnotations, toolAnnotationsSchema } from './mcp-content.ts';

/**
 * The longest timeout a Node timer can hold (2³¹−1 ms, about 24.8 days); a longer one fires at once.
 * The bound of every timeout toolq accepts: a tool's, a dispatch's, a Dispatcher duration option.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Anthropic's rule for tool names. */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;

export interface ToolRunContext {
  /** Aborted on timeout, on cancellation by the coordinator, and on forced worker shutdown. */
  signal: AbortSignal;
  /** 1 for the first run, 2 for the first retry, ... */
  attempt: number;
  toolUseId: string;
  /**
   * The uid of the dispatch the call belongs to (what its jobs, record and cancellations are
   * named by), not the caller's batch name; the job id for a plain BullMQ producer's job.
   */
  batchUid: string;
  /** @deprecated The same as `batchUid` (its name before): the dispatch's uid, not the caller's batch name. */
  batchId: string;
  /** Epoch ms at which `signal` aborts for the timeout: the call's deadline or its own timeout. */
  deadline?: number;
  /** The app the batch belongs to: the HTTP API token's app name, `default` without one. */
  app: string;
  /** The caller's context of the batch (who the call acts for); `{}` when none was given. */
  context: Readonly<Record<string, unknown>>;
  /**
   * Reports how far the call is: MCP clients that asked for progress get `notifications/progress`,
   * durable runs show it in their events. Cheap to call often: the worker sends at most a few a
   * second per call (the latest value wins). `progress` must grow from one report to the next.
   */
  reportProgress(progress: number, total?: number, message?: string): void;
  /**
   * The same string for every run of this call (a re-run after its worker died, a retry, a
   * durable run resumed on another coordinator) and another for every other call: pass it to a
   * downstream API that takes one (payment providers do). See docs/delivery.md.
   */
  idempotencyKey: string;
}

/**
 * How often a call may run (docs/delivery.md). `at-least-once` (the default): a call interrupted
 * by its worker's death runs again on another worker, within its deadline. `at-most-once`: it is
 * never started twice by anything; an interrupted one is answered that its outcome is unknown.
 */
export type Delivery = 'at-least-once' | 'at-most-once';
export const DELIVERY_MODES: readonly Delivery[] = ['at-least-once', 'at-most-once'];

/**
 * Shared results for a tool whose answer depends only on its input: identical calls (same tool,
 * same input, same scope) running at once wait for one run, and those within `ttlMs` after it get
 * its result. `app`: shared within the caller's app; `fleet`: shared by every app.
 */
export interface CachePolicy {
  ttlMs: number;
  scope: 'app' | 'fleet';
}

export interface RetryPolicy {
  /** Total runs, including the first. */
  attempts: number;
  /** Wait before retry k is `backoffMs * 2^(k-1)`. Default 200. */
  backoffMs?: number;
}

export interface ToolDefinition<Input = unknown, Output = unknown> {
  name: string;
  description: string;
  /** zod schema of the input; also the source of the JSON Schema `input_schema` sent to the model. */
  input: z.ZodType<Input>;
  /**
   * The JSON Schema sent to the model, for a tool whose `input` validates through something zod
   * cannot express as JSON Schema (an MCP server's tool, checked against the server's own schema).
   */
  inputSchema?: JsonSchemaObject;
  /** Per-call timeout; default is the worker's `defaultTimeoutMs` (30 s). */
  timeoutMs?: number;
  /** Only for idempotent tools: used when a batch runs with `failurePolicy: 'retry'`. Default: none. */
  retry?: RetryPolicy;
  /**
   * At most this many calls of the tool run at once across the whole fleet, whatever the number of
   * workers (docs/flow-control.md). Default: no cap. Operators override it at run time.
   */
  concurrency?: number;
  /** At most `max` calls start in any window of `perMs` ms, fleet-wide. Default: no limit. */
  rateLimit?: RateLimit;
  /** Default `at-least-once`; an `at-most-once` tool may not declare `retry`. See docs/delivery.md. */
  delivery?: Delivery;
  /** Default: none (every call runs). */
  cache?: CachePolicy;
  /** MCP tool annotations, listed to MCP clients of the coordinator (`/mcp`): hints, not guarantees. */
  annotations?: ToolAnnotations;
  /**
   * Whether a person must approve a call before it runs: `'always'`, `'never'` (the default), or
   * a rule on the input (`{ when: [{ field: 'amount', above: 100 }] }`), which the coordinator
   * evaluates when it plans the batch (see docs/approvals.md).
   */
  approval?: ApprovalSetting;
  run: (input: Input, ctx: ToolRunContext) => Promise<Output> | Output;
}

// biome-ignore lint/suspicious/noExplicitAny: a list of tools holds tools of different input types.
export type AnyTool = ToolDefinition<any, unknown>;

/** Checks a tool definition once, where it is written, so that mistakes fail at start-up, not per call. */
export function defineTool<Input, Output>(def: ToolDefinition<Input, Output>): ToolDefinition<Input, Output> {
  const where = `tool ${JSON.stringify(def.name)}`;
  if (typeof def.name !== 'string' || !TOOL_NAME_PATTERN.test(def.name)) {
    throw new ToolqError('TOOL_DEFINITION_INVALID', `${where}: name must match ${TOOL_NAME_PATTERN}`);
  }
  if (typeof def.description !== 'string' || def.description.trim() === '') {
    throw new ToolqError('TOOL_DEFINITION_INVALID', `${where}: description must be a non-empty string`);
  }
  if (!(def.input instanceof z.ZodType)) {
    throw new ToolqError('TOOL_DEFINITION_INVALID', `${where}: input must be a zod schema`);
  }
  // Node's timers hold at most 2³¹−1 ms (about 24.8 days); a longer one fires at once.
  if (
    def.timeoutMs !== undefined &&
    !(Number.isFinite(def.timeoutMs) && def.timeoutMs > 0 && def.timeoutMs <= MAX_TIMEOUT_MS)
  ) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `${where}: timeoutMs must be a number of ms from 1 to ${MAX_TIMEOUT_MS} (about 24.8 days), got ${def.timeoutMs}`,
    );
  }
  if (def.retry && !(Number.isInteger(def.retry.attempts) && def.retry.attempts >= 1)) {
    throw new ToolqError('TOOL_DEFINITION_INVALID', `${where}: retry.attempts must be an integer >= 1`);
  }
  checkDeclaredLimits(where, def);
  checkDelivery(def, where);
  if (def.annotations !== undefined && !toolAnnotationsSchema.safeParse(def.annotations).success) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `${where}: annotations must be MCP tool annotations (title: string; readOnlyHint, destructiveHint, idempotentHint, openWorldHint: booleans)`,
    );
  }
  if (def.approval !== undefined) {
    const parsed = approvalSettingSchema.safeParse(def.approval);
    if (!parsed.success) {
      throw new ToolqError(
        'TOOL_DEFINITION_INVALID',
        `${where}: approval must be 'always', 'never' or { when: [{ field, above | equals | in }] }: ${parsed.error.issues[0]?.message}`,
      );
    }
  }
  inputJsonSchema(def); // throws here, not at first use, if the schema cannot become JSON Schema
  return def;
}

function checkDelivery(def: AnyTool, where: string): void {
  if (def.delivery !== undefined && !DELIVERY_MODES.includes(def.delivery)) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `${where}: delivery must be 'at-least-once' or 'at-most-once', got ${JSON.stringify(def.delivery)}`,
    );
  }
  if (def.delivery === 'at-most-once' && def.retry) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `${where}: retry runs a call again, which an at-most-once tool forbids: drop retry or the delivery`,
    );
  }
  const cache = def.cache;
  if (cache === undefined) return;
  const ttlOk = Number.isInteger(cache?.ttlMs) && cache.ttlMs >= 1 && cache.ttlMs <= MAX_TIMEOUT_MS;
  if (!ttlOk || (cache.scope !== 'app' && cache.scope !== 'fleet')) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `${where}: cache must be { ttlMs: a whole number of ms from 1 to ${MAX_TIMEOUT_MS}, scope: 'app' or 'fleet' }`,
    );
  }
  if (def.delivery === 'at-most-once') {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `${where}: cache shares one run's result with identical calls, which suits only tools that may run again: drop cache or delivery 'at-most-once'`,
    );
  }
}

export type JsonSchemaObject = { type: 'object'; [key: string]: unknown };

/** The JSON Schema `input_schema` the Messages API expects (an object schema, draft 2020-12). */
export function inputJsonSchema(tool: Pick<AnyTool, 'name' | 'input' | 'inputSchema'>): JsonSchemaObject {
  if (tool.inputSchema) {
    if (tool.inputSchema.type !== 'object') {
      throw new ToolqError(
        'TOOL_DEFINITION_INVALID',
        `tool ${tool.name}: inputSchema must have "type": "object"`,
      );
    }
    return tool.inputSchema;
  }
  let schema: Record<string, unknown>;
  try {
    schema = z.toJSONSchema(tool.input, { io: 'input', unrepresentable: 'throw' }) as Record<string, unknown>;
  } catch (err) {
    throw new ToolqError(
      'TOOL_DEFINITION_INVALID',
      `tool ${tool.name}: input schema cannot be expressed as JSON Schema`,
      { cause: err },
    );
  }
  if (schema.type !== 'object') {
    throw new ToolqError('TOOL_DEFINITION_INVALID', `tool ${tool.name}: input must be a z.object(...)`);
  }
  delete schema.$schema;
  return schema as JsonSchemaObject;
}

/** What the Messages API `tools` parameter takes for one tool. */
export function toAnthropicTool(tool: AnyTool): {
  name: string;
  description: string;
  input_schema: JsonSchemaObject;
} {
  return { name: tool.name, description: tool.description, input_schema: inputJsonSchema(tool) };
}
