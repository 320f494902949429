import type { z } from 'zod';

/** JSON text read from Redis or the wire, checked against a schema; undefined when either fails. */
export function parseJsonAs<T extends z.ZodType>(schema: T, raw: string): z.output<T> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const parsed = schema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}
