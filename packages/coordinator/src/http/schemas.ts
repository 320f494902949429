/** The HTTP contract's request bodies, checked at the edge; types inside are trusted. */
import { callPrioritySchema, failurePolicySchema } from '@toolq/shared';
import {
  callerContextSchema,
  KEY_PART_PATTERN,
  MAX_CONTEXT_BYTES,
  MAX_TIMEOUT_MS,
  TOOL_SET_NAME_PATTERN,
} from '@toolq/shared/internal';
import { z } from 'zod';
import { chatToolCallSchema, functionCallItemSchema } from '../openai/format.ts';

export const MAX_TOOL_USES_PER_BATCH = 1_000;

/** A batch name becomes part of a Redis key (keys.batchName), so it obeys the key-part rule. */
export const batchNameSchema = z.string().regex(KEY_PART_PATTERN, 'use 1-100 letters, digits, _ . -');

/**
 * One `tool_use` block exactly as the Messages API returns it: `type` and any field the API adds
 * now or later (`caller`, …) are accepted and ignored; only id, name and input are used.
 */
export const toolUseBlockSchema = z
  .object({
    type: z
      .literal('tool_use', {
        error: (issue) =>
          `only tool_use blocks can run here, not ${JSON.stringify(issue.input)} (server tools run on Anthropic's side; text is not a call)`,
      })
      .optional(),
    id: z.string().min(1).max(256),
    // Any name: an unknown one is answered `Unknown tool: <name>` like the model expects.
    name: z.string().min(1).max(256),
    input: z.unknown().refine((v) => v !== undefined, 'Required'),
  })
  .loose();

/** Per batch or run: tools held for a person's approval this time (docs/approvals.md). */
const approvalToolsSchema = z
  .array(z.string().min(1).max(256))
  .max(1_000)
  .optional()
  .describe(
    'Tools whose calls wait for a person to approve them (GET /v1/approvals) this time, besides those whose ' +
      'definition asks for it (`approval`).',
  );

/** When a pending approval expires; the default differs between batches and runs. */
const approvalTimeoutSchema = (defaultText: string) =>
  z
    .number()
    .int()
    .min(1)
    .max(MAX_TIMEOUT_MS)
    .optional()
    .describe(
      `When a pending approval expires (the call is answered is_error "approval expired"). Default: ${defaultText}.`,
    );
export const toolBatchRequestSchema = z
  .object({
    tool_uses: z
      .array(toolUseBlockSchema)
      .max(MAX_TOOL_USES_PER_BATCH)
      .refine((xs) => new Set(xs.map((x) => x.id)).size === xs.length, 'ids must be unique')
      .optional()
      .describe('The `tool_use` blocks of a Messages API response; answered with `tool_results`.'),
    tool_calls: z
      .array(chatToolCallSchema)
      .max(MAX_TOOL_USES_PER_BATCH)
      .refine((xs) => new Set(xs.map((x) => x.id)).size === xs.length, 'ids must be unique')
      .optional()
      .describe(
        'The `tool_calls` of an OpenAI Chat Completions message, as returned; answered with `tool_messages`. A call whose `arguments` are not JSON is answered with an error message, the others run.',
      ),
    function_calls: z
      .array(functionCallItemSchema)
      .max(MAX_TOOL_USES_PER_BATCH)
      .refine((xs) => new Set(xs.map((x) => x.call_id)).size === xs.length, 'call_ids must be unique')
      .optional()
      .describe(
        'The `function_call` items of an OpenAI Responses output, as returned; answered with `function_call_outputs`.',
      ),
    timeout_ms: z.number().int().min(1).max(3_600_000).optional(),
    failure_policy: failurePolicySchema.optional(),
    max_retries: z.number().int().min(0).max(20).optional(),
    priority: callPrioritySchema.optional(),
    /** Your id for the batch, to collect it with GET /v1/tool-batches/:id from any coordinator. */
    batch_id: batchNameSchema.optional(),
    approval_tools: approvalToolsSchema,
    approval_timeout_ms: approvalTimeoutSchema('300000 (5 min) for a batch'),
    /** Who the batch acts for: every tool reads it as `ctx.context` (never logged). */
    context: callerContextSchema
      .optional()
      .describe(
        `Who the batch acts for (a user id, a tenant, …): a JSON object of at most ${MAX_CONTEXT_BYTES} bytes ` +
          "that every tool of the batch reads as `ctx.context`, with the token's app as `ctx.app`. Never logged; " +
          "it is only in the calls' jobs in Redis, removed when they finish.",
      ),
  })
  .strict()
  .refine((r) => [r.tool_uses, r.tool_calls, r.function_calls].filter((x) => x !== undefined).length === 1, {
    message:
      'give exactly one of tool_uses (Messages API), tool_calls (Chat Completions) and function_calls (Responses API)',
    path: ['tool_uses'],
  })
  .refine((r) => r.tool_uses !== undefined || r.batch_id === undefined, {
    message:
      'batch_id names batches of tool_uses only (GET /v1/tool-batches/{id} answers tool_result blocks)',
    path: ['batch_id'],
  });

export type ToolBatchRequest = z.infer<typeof toolBatchRequestSchema>;

const messageSchema = z
  .object({
    role: z.enum(['user', 'assistant']),
    content: z.union([z.string(), z.array(z.record(z.string(), z.unknown()))]),
  })
  .strict();

/** What a run that names no tools is told: the field, and the two ways to name them. */
export const NAME_YOUR_TOOLS =
  'a run names the tools its model is offered: give `tools` (tool names from GET /v1/tools, e.g. ' +
  '["get_weather"]; [] for none) or `tool_set` (a set the operator defined in TOOLQ_TOOL_SETS); see docs/tool-sets.md';

/**
 * POST /v1/runs: an agent run on the coordinator's tools; the model comes from the server's
 * configuration. Stored with the run as given, except that a `tool_set` is stored with its `tools`
 * (resolved when the run is accepted, so that a coordinator that takes the run over offers the same).
 */
const runRequestFields = z
  .object({
    prompt: z.string().min(1).max(1_000_000).optional(),
    messages: z.array(messageSchema).min(1).max(1_000).optional(),
    system: z.string().max(1_000_000).optional(),
    model: z.string().min(1).max(200).optional(),
    tools: z
      .array(z.string().min(1).max(256))
      .max(1_000)
      .optional()
      .describe(
        'The tools offered to the model, by name (GET /v1/tools); [] for none. Give this or `tool_set`: ' +
          'a run without either is refused.',
      ),
    tool_set: z
      .string()
      .regex(TOOL_SET_NAME_PATTERN, 'a tool set name is 1-64 letters, digits, _ . -')
      .optional()
      .describe(
        'The name of a tool set the operator defined (TOOLQ_TOOL_SETS, e.g. `support`): the run is offered ' +
          'its tools. Give this or `tools`.',
      ),
    max_iterations: z.number().int().min(1).max(100).optional(),
    max_tokens: z.number().int().min(1).max(200_000).optional(),
    stream: z.boolean().optional(),
    timeout_ms: z.number().int().min(1).max(3_600_000).optional(),
    failure_policy: failurePolicySchema.optional(),
    /** Every batch of the run; stored with the run, so a coordinator that takes it over keeps it. */
    priority: callPrioritySchema.optional(),
    approval_tools: approvalToolsSchema,
    approval_timeout_ms: approvalTimeoutSchema('86400000 (24 h) for a run'),
    /** Who the run acts for: every tool of every turn reads it as `ctx.context`; kept with the run. */
    context: callerContextSchema
      .optional()
      .describe(
        `Who the run acts for (a user id, a tenant, …): a JSON object of at most ${MAX_CONTEXT_BYTES} bytes ` +
          "that every tool the run calls reads as `ctx.context`, with the token's app as `ctx.app`. Never logged; " +
          "unlike a batch's, it is stored with the run request in the run record (so that a coordinator that " +
          "takes the run over sends it too) and stays there for the run's retention.",
      ),
  })
  .strict()
  .refine(
    (r) => (r.prompt === undefined) !== (r.messages === undefined),
    'give exactly one of prompt and messages',
  );

export const runRequestSchema = runRequestFields.superRefine((r, ctx) => {
  if (r.tools !== undefined && r.tool_set !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['tool_set'],
      message: 'give `tools` or `tool_set`, not both',
    });
  if (r.tools === undefined && r.tool_set === undefined)
    ctx.addIssue({ code: 'custom', path: ['tools'], message: NAME_YOUR_TOOLS });
});
export type RunRequest = z.infer<typeof runRequestSchema>;

/**
 * A run request as stored: a `tool_set`'s tools are stored beside it. Runs accepted before runs had
 * to name their tools have neither, and are carried on as they were accepted (every tool).
 */
export const storedRunRequestSchema = runRequestFields;
export type StoredRunRequest = z.infer<typeof storedRunRequestSchema>;
