/**
 * The API names its fields in snake_case since 0.2.0. A request that still sends a field in
 * camelCase (`timeoutMs` for `timeout_ms`) is refused with a 400 that names the field to use,
 * rather than the bare "unrecognized key" of a strict schema, or silently ignored where unknown
 * fields are (a query string).
 */
import type { ZodType } from 'zod';

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The object schema under optional/nullable/default wrappers and arrays, or undefined. */
function shapeOf(schema: ZodType): Record<string, ZodType> | undefined {
  let s: ZodType = schema;
  for (let depth = 0; depth < 10; depth++) {
    const def = s.def as { type: string; innerType?: ZodType; element?: ZodType; shape?: unknown };
    if (def.type === 'object') return (s as unknown as { shape: Record<string, ZodType> }).shape;
    const inner = def.innerType ?? def.element;
    if (!inner) return undefined;
    s = inner;
  }
  return undefined;
}

/**
 * `"<path>: timeoutMs is now timeout_ms …"` for the first camelCase key of `value` whose snake_case
 * form is a field of `schema` at the same place (nested objects and arrays of them included), or
 * undefined when there is none.
 */
export function renamedField(
  schema: ZodType,
  value: unknown,
  path: readonly (string | number)[] = [],
): string | undefined {
  const shape = shapeOf(schema);
  if (!shape || typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = renamedField(schema, item, [...path, i]);
      if (found) return found;
    }
    return undefined;
  }
  for (const [key, inner] of Object.entries(value)) {
    const wanted = snake(key);
    if (wanted !== key && !Object.hasOwn(shape, key) && Object.hasOwn(shape, wanted)) {
      const where = path.length ? `${path.join('.')}.` : '';
      return `${where}${key} is now ${where}${wanted}: the API names every field in snake_case since 0.2.0`;
    }
    const field = Object.hasOwn(shape, key) ? shape[key] : undefined;
    if (field) {
      const found = renamedField(field, inner, [...path, key]);
      if (found) return found;
    }
  }
  return undefined;
}
