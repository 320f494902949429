/** The HTTP contract's request bodies, checked at the edge; types inside are trusted. */
import { failurePolicySchema } from '@toolq/shared';
import { z } from 'zod';

export const MAX_TOOL_USES_PER_BATCH = 1_000;

export const batchIdSchema = z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, 'use 1-100 letters, digits, _ . -');

export const toolBatchRequestSchema = z
  .object({
    tool_uses: z
      .array(
        z
          .object({
            id: z.string().min(1).max(256),
            // Any name: an unknown one is answered `Unknown tool: <name>` like the model expects.
            name: z.string().min(1).max(256),
            input: z.unknown().refine((v) => v !== undefined, 'Required'),
          })
          .strict(),
      )
      .max(MAX_TOOL_USES_PER_BATCH)
      .refine((uses) => new Set(uses.map((u) => u.id)).size === uses.length, 'ids must be unique'),
    timeout_ms: z.number().int().min(1).max(3_600_000).optional(),
    failure_policy: failurePolicySchema.optional(),
    max_retries: z.number().int().min(0).max(20).optional(),
    /** Your id for the batch, to collect it with GET /v1/tool-batches/:id after a coordinator restart. */
    batch_id: batchIdSchema.optional(),
  })
  .strict();

export type ToolBatchRequest = z.infer<typeof toolBatchRequestSchema>;
