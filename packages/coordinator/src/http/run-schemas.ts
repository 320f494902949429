/**
 * The run API's contract at the edge: what each route takes (params, query, headers) and what it
 * answers. The request body of POST /v1/runs is `runRequestSchema` in schemas.ts.
 */
import { z } from 'zod';
import { RUN_EVENT_TYPES } from '../runs/run-events.ts';
import { isStreamId, RUN_ID_PATTERN } from '../runs/run-keys.ts';
import { runResultSchema } from '../runs/run-result.ts';
import { RUN_STATUSES } from '../runs/run-store.ts';

export { type RunRequest, runRequestSchema } from './schemas.ts';

export const runIdSchema = z.string().regex(RUN_ID_PATTERN, 'a run id is run_ and 24 hex digits');
export const runParamsSchema = z.object({ id: runIdSchema });

/** Printable ASCII, as Stripe and the IETF draft have it; a UUID is a good choice. */
export const idempotencyKeySchema = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 characters')
  .regex(/^[\x21-\x7e]+$/, 'use printable ASCII without spaces');

export const runListQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    /** `next_cursor` of the page before. */
    cursor: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'use the next_cursor of the page before')
      .optional(),
  })
  .strict();

/** A Redis stream id: `<ms>-<seq>`. */
export const eventIdSchema = z
  .string()
  .regex(/^\d{1,20}-\d{1,20}$/, 'an event id is <ms>-<seq>, as sent in id:')
  .refine((id) => !/^\d+-\d+$/.test(id) || isStreamId(id), 'an event id has parts of at most 2^64-1');
export const runEventsQuerySchema = z.object({ last_event_id: eventIdSchema.optional() }).strict();

export const runStatusSchema = z.enum(RUN_STATUSES);
const errorBodySchema = z.object({ code: z.string(), message: z.string() });

export const runErrorResponseSchema = z.object({ error: errorBodySchema });

/** 202 from POST /v1/runs (and 202 again for a repeated Idempotency-Key, with `idempotent-replayed: true`). */
export const runCreatedResponseSchema = z.object({ run_id: runIdSchema, status: runStatusSchema });

/** GET /v1/runs/:id */
export const runResponseSchema = z.object({
  run_id: runIdSchema,
  status: runStatusSchema,
  created_at: z.string().describe('ISO 8601'),
  updated_at: z.string(),
  finished_at: z.string().optional(),
  elapsed_ms: z.number().int(),
  /** The coordinator running it (or that ran it last). */
  coordinator: z.string().optional(),
  /** Times another coordinator took it over after its owner died or shut down (a wake from a park is not one). */
  takeovers: z.number().int(),
  /** Set while the run is parked: it waits for approvals only, and no coordinator holds it. */
  parked_at: z.string().optional().describe('ISO 8601'),
  /** Steps saved so far (model turns whose work is complete). */
  saved_iterations: z.number().int().optional(),
  result: runResultSchema.optional(),
  error: errorBodySchema.optional(),
});

/** GET /v1/runs: newest first. */
export const runListResponseSchema = z.object({
  runs: z.array(
    z.object({
      run_id: runIdSchema,
      status: runStatusSchema,
      created_at: z.string(),
      updated_at: z.string(),
    }),
  ),
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: z.string().nullable(),
});

/** DELETE /v1/runs/:id */
export const runCancelResponseSchema = z.object({ run_id: runIdSchema, status: z.literal('cancelled') });

/**
 * One SSE event of GET /v1/runs/:id/events (`text/event-stream`): `id:` is the event's id (send it
 * back as Last-Event-ID), `event:` its type, `data:` this JSON. The stream ends after done, failed
 * or cancelled.
 */
export const runEventSchema = z
  .object({ type: z.enum(RUN_EVENT_TYPES), at: z.number().int().describe('epoch ms') })
  .catchall(z.unknown());
