/**
 * The versioned contract between producers (the coordinator, or any BullMQ producer) and workers.
 * Workers and coordinators meet only in Redis, through these shapes. Bump CONTRACT_VERSION on any
 * change an old reader could misread.
 */
import { z } from 'zod';
import { approvalSettingSchema } from './approval-rule.ts';
import { mcpToolResultSchema, toolAnnotationsSchema } from './mcp-content.ts';
import { TOOL_NAME_PATTERN } from './tool.ts';
import { TRACEPARENT_PATTERN } from './tracing.ts';

/**
 * 2: a result may carry the MCP content a tool returned (`CallResult.mcp`) and a tool spec its MCP
 * annotations. Job data did not change: producers keep writing `v: 1` jobs (JOB_VERSION), which
 * workers of both versions run; workers write `v: 2` results, which coordinators of version 2 read
 * along with the `v: 1` results of older workers (upgrade coordinators first).
 */
export const CONTRACT_VERSION = 2;
/** The version producers write on jobs: the oldest whose workers read them right. */
export const JOB_VERSION = 1;
/** The versions this code reads (job data, chunks and results). */
const readableVersion = z.union([z.literal(1), z.literal(2)]);

export const failurePolicySchema = z.enum(['continue', 'abort', 'retry']);
export type FailurePolicy = z.infer<typeof failurePolicySchema>;

/**
 * A batch's or run's priority within its app (docs/flow-control.md): when a flow-controlled tool
 * has calls waiting, an app's calls start highest priority first, in the order sent within one
 * priority. Apps still take turns: a priority orders an app's own calls, never another app's.
 */
export const CALL_PRIORITY = { min: -10, max: 10, default: 0 } as const;
export const callPrioritySchema = z
  .number()
  .int()
  .min(CALL_PRIORITY.min)
  .max(CALL_PRIORITY.max)
  .describe(
    `Orders this app's calls of a flow-controlled tool that wait for a slot: a whole number from ${CALL_PRIORITY.min} ` +
      `to ${CALL_PRIORITY.max}, higher first, the order sent within one priority; other apps' turns are unchanged. ` +
      `Default ${CALL_PRIORITY.default}.`,
  );

/**
 * `not_started`: a flow-controlled call that never started (a cap, a rate limit, a downstream's
 * 429, an operator's pause kept it waiting past its deadline); unlike `timeout`, nothing ran.
 * `unknown`: an at-most-once call was interrupted after it started (its worker died, or it was
 * delivered again): it may or may not have taken effect (docs/delivery.md).
 */
export const outcomeSchema = z.enum([
  'ok',
  'error',
  'timeout',
  'invalid_input',
  'unknown_tool',
  'cancelled',
  'not_started',
  'unknown',
]);
export type Outcome = z.infer<typeof outcomeSchema>;

/** Most bytes of a batch's caller context, as JSON: it travels in every call's job. */
export const MAX_CONTEXT_BYTES = 8_192;

/**
 * Who a batch acts for (a user id, a tenant, scopes), as the caller gives it: a JSON object the
 * tools read as `ctx.context`. Never logged; it is in the calls' jobs only, removed with them.
 */
export const callerContextSchema = z
  .record(z.string(), z.unknown())
  .refine((value) => isJson(value, 0), {
    error: 'must hold JSON values only (strings, finite numbers, booleans, null, arrays, plain objects)',
  })
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= MAX_CONTEXT_BYTES, {
    error: `must be at most ${MAX_CONTEXT_BYTES} bytes as JSON`,
  });

/** Survives JSON unchanged (no Date, Map, undefined, NaN, function), at most 32 levels deep. */
function isJson(value: unknown, depth: number): boolean {
  if (depth > 32) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((item) => isJson(item, depth + 1));
  if (typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return false;
  return Object.values(value).every((item) => isJson(item, depth + 1));
}

/** Data of one BullMQ job = one `tool_use` block. The job's name is the tool name. */
export const jobDataSchema = z.object({
  v: readableVersion,
  tool: z.string().regex(TOOL_NAME_PATTERN),
  input: z.unknown(),
  toolUseId: z.string().min(1).max(256),
  /** Epoch ms after which the result is no longer wanted; the worker does not start the call after it. */
  deadline: z.number().int().positive(),
  /** The timeout the worker enforces on the run itself (the tool's own timeout if smaller). */
  timeoutMs: z.number().int().positive(),
  failurePolicy: failurePolicySchema.default('continue'),
  /** With `failurePolicy: 'retry'`, at most this many re-runs of a tool that declares `retry`. */
  maxRetries: z.number().int().min(0).max(20).optional(),
  enqueuedAt: z.number().int().positive(),
  /**
   * The call's idempotency key (ToolRunContext.idempotencyKey), the same for every run of it.
   * Absent from plain producers and older coordinators: the worker then derives one from the job.
   */
  idempotencyKey: z.string().min(1).max(200).optional(),
  /** The app the batch belongs to (the HTTP token's); absent from plain producers: `default`. */
  app: z.string().max(100).optional(),
  /** The batch's priority within its app (CALL_PRIORITY); absent: the default. */
  priority: callPrioritySchema.optional(),
  context: callerContextSchema.optional(),
  /**
   * Where the worker reports the result. Absent for a plain BullMQ producer: the result is then
   * only the job's return value.
   */
  reply: z
    .object({
      /** The dispatch's uid (not the caller's batch name): what the coordinator knows the batch by. */
      batchId: z.string().min(1).max(200),
      index: z.number().int().min(0),
      /** Redis hash of the batch (one field per call, first write wins). */
      batchKey: z.string().min(1),
      /** Redis stream the coordinator reads; a small notification with the result is appended. */
      streamKey: z.string().min(1),
    })
    .optional(),
  /** The caller's trace context (W3C Trace Context), so the worker's spans join its trace. */
  trace: z
    .object({
      traceparent: z.string().regex(TRACEPARENT_PATTERN, 'a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>'),
      tracestate: z.string().max(512).optional(),
    })
    .optional(),
});
export type JobData = z.input<typeof jobDataSchema>;
export type ParsedJobData = z.output<typeof jobDataSchema>;

/** Most calls one BullMQ job carries (a chunk of a batch). */
export const MAX_CALLS_PER_JOB = 16;

/**
 * Several calls of one batch in one BullMQ job (the job's name is `chunk`): a worker fetches one
 * job instead of one per call, which is most of BullMQ's per-call cost. Each element is checked
 * as a JobData on its own, and each reports its own result.
 */
export const jobChunkSchema = z.object({
  v: readableVersion,
  chunk: z.array(z.unknown()).min(1).max(MAX_CALLS_PER_JOB),
});
export type JobChunk = { v: 1 | 2; chunk: JobData[] };

const textBlockSchema = z.object({ type: z.literal('text'), text: z.string() }).loose();
/** The image sources the Messages API takes, exactly: a tool_result then assigns to the SDK's ImageBlockParam. */
const IMAGE_MEDIA_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'] as const;
const imageSourceSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('base64'), media_type: z.enum(IMAGE_MEDIA_TYPES), data: z.string() }),
  z.object({ type: z.literal('url'), url: z.string() }),
  z.object({ type: z.literal('file'), file_id: z.string() }),
]);
const imageBlockSchema = z.object({ type: z.literal('image'), source: imageSourceSchema }).loose();
export const contentBlockSchema = z.union([textBlockSchema, imageBlockSchema]);
export type ToolContentBlock = z.infer<typeof contentBlockSchema>;

/** One call's answer, as a worker writes it (also the BullMQ job's return value). */
export const callResultSchema = z.object({
  v: readableVersion,
  toolUseId: z.string(),
  tool: z.string(),
  outcome: outcomeSchema,
  content: z.union([z.string(), z.array(contentBlockSchema)]),
  isError: z.boolean(),
  /**
   * The tool's answer as MCP content (it returned `mcpResult()`, or it is an MCP server's tool),
   * passed unchanged to MCP clients; `content` is its mapping for the Messages API. v2 on.
   */
  mcp: mcpToolResultSchema.optional(),
  worker: z.string().optional(),
  attempts: z.number().int().min(0),
  enqueuedAt: z.number().optional(),
  startedAt: z.number().optional(),
  finishedAt: z.number().optional(),
});
export type CallResult = z.infer<typeof callResultSchema>;

/** The `tool_result` block sent back to the model. */
export interface ToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content: string | ToolContentBlock[];
  is_error?: true;
}

export function toToolResultBlock(
  result: Pick<CallResult, 'toolUseId' | 'content' | 'isError'>,
): ToolResultBlock {
  return {
    type: 'tool_result',
    tool_use_id: result.toolUseId,
    content: result.content,
    ...(result.isError ? { is_error: true as const } : {}),
  };
}

/** What a worker advertises about one tool in the catalog. */
export const toolSpecSchema = z.object({
  name: z.string().regex(TOOL_NAME_PATTERN),
  description: z.string(),
  input_schema: z.record(z.string(), z.unknown()),
  timeoutMs: z.number().positive(),
  retry: z.object({ attempts: z.number().int().min(1), backoffMs: z.number().min(0) }).optional(),
  /** The definition's flow limits (absent from older workers: none). */
  concurrency: z.number().int().min(1).optional(),
  rateLimit: z.object({ max: z.number().int().min(1), perMs: z.number().int().min(1) }).optional(),
  /** Absent from older workers: `at-least-once`. */
  delivery: z.enum(['at-least-once', 'at-most-once']).optional(),
  /** MCP tool annotations (hints for MCP clients: read-only, destructive, …); v2 on. */
  annotations: toolAnnotationsSchema.optional(),
  /** Which calls wait for a person's approval (approval-rule.ts); absent: none. */
  approval: approvalSettingSchema.optional(),
});
export type ToolSpec = z.infer<typeof toolSpecSchema>;

/** One worker process's entry in the registry, refreshed by its heartbeat. */
export const workerInfoSchema = z.object({
  id: z.string(),
  pool: z.string(),
  /** The queue only workers with this exact tool set consume (lanes.ts); absent from older workers. */
  lane: z.string().optional(),
  host: z.string(),
  pid: z.number().int(),
  concurrency: z.number().int(),
  startedAt: z.number(),
  heartbeatAt: z.number(),
  tools: z.array(toolSpecSchema),
});
export type WorkerInfo = z.infer<typeof workerInfoSchema>;

/** The contract as JSON Schema, for producers in other languages. */
export function contractJsonSchemas(): Record<string, unknown> {
  return {
    version: CONTRACT_VERSION,
    jobData: z.toJSONSchema(jobDataSchema, { io: 'input' }),
    jobChunk: z.toJSONSchema(
      jobChunkSchema.extend({ chunk: z.array(jobDataSchema).min(1).max(MAX_CALLS_PER_JOB) }),
      {
        io: 'input',
      },
    ),
    callResult: z.toJSONSchema(callResultSchema),
  };
}
