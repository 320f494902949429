/**
 * A tool's flow limits (issue 19): a fleet-wide concurrency cap and a sliding-window rate limit,
 * as a tool definition declares them and as an operator overrides them, and the queue a limited
 * tool's calls go through. One schema serves defineTool, the worker's MCP settings and the HTTP
 * route, so that all three refuse the same bad input with the same words.
 */
import { z } from 'zod';
import { ToolqError } from '../errors.ts';

/** At most this many starts per window, and at most this window: a day. */
export const MAX_RATE_WINDOW_MS = 86_400_000;
/** The largest cap: BullMQ keeps it in a queue's meta; beyond this a cap limits nothing real. */
export const MAX_CONCURRENCY = 100_000;

export const rateLimitSchema = z
  .object({
    max: z.number().int().min(1, 'must be at least 1 call per window').max(1_000_000),
    perMs: z
      .number({ error: 'a rate limit needs its window: perMs, in milliseconds' })
      .int()
      .min(1, 'must be a window of at least 1 ms')
      .max(MAX_RATE_WINDOW_MS, `must be at most ${MAX_RATE_WINDOW_MS} ms (a day)`),
  })
  .strict();
export type RateLimit = z.infer<typeof rateLimitSchema>;

export const concurrencySchema = z
  .number()
  .int('must be a whole number of calls')
  .min(1, 'must be at least 1 (pause the tool to stop it)')
  .max(MAX_CONCURRENCY);

/** What a tool declares; both optional. */
export const declaredLimitsSchema = z
  .object({ concurrency: concurrencySchema.optional(), rateLimit: rateLimitSchema.optional() })
  .strict();
export type DeclaredLimits = z.infer<typeof declaredLimitsSchema>;

/**
 * An operator's override, stored in Redis: a field absent keeps the definition's value, `null`
 * removes the limit. Its presence alone routes the tool through its own queue.
 */
export const limitsOverrideSchema = z
  .object({
    concurrency: concurrencySchema.nullable().optional(),
    rateLimit: rateLimitSchema.nullable().optional(),
    paused: z.boolean().optional(),
  })
  .strict();
export type LimitsOverride = z.infer<typeof limitsOverrideSchema>;

/** What holds for a tool now: the override where it says something, else the definition. */
export interface EffectiveLimits {
  concurrency: number | null;
  rateLimit: RateLimit | null;
  paused: boolean;
}

export function effectiveLimits(
  declared: DeclaredLimits,
  override: LimitsOverride | undefined,
): EffectiveLimits {
  return {
    concurrency: override?.concurrency !== undefined ? override.concurrency : (declared.concurrency ?? null),
    rateLimit: override?.rateLimit !== undefined ? override.rateLimit : (declared.rateLimit ?? null),
    paused: override?.paused ?? false,
  };
}

/** Throws TOOL_DEFINITION_INVALID naming the field when a definition's limits are wrong. */
export function checkDeclaredLimits(
  where: string,
  limits: { concurrency?: unknown; rateLimit?: unknown },
): void {
  const parsed = declaredLimitsSchema.safeParse({
    ...(limits.concurrency !== undefined ? { concurrency: limits.concurrency } : {}),
    ...(limits.rateLimit !== undefined ? { rateLimit: limits.rateLimit } : {}),
  });
  if (parsed.success) return;
  const issue = parsed.error.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  throw new ToolqError('TOOL_DEFINITION_INVALID', `${where}: ${path} ${issue?.message ?? 'is invalid'}`);
}
