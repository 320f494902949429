/**
 * An MCP tool's `inputSchema` (JSON Schema) as the zod schema a toolq tool validates its input
 * with, so the worker's usual check gives the usual `Invalid input for <tool>: <path>: <problem>`
 * before the server sees the call. Validation is Ajv's (JSON Schema 2020-12), not zod's
 * `fromJSONSchema`, which is marked experimental and rejects `if`/`then`, `not` and others.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { z } from 'zod';

// Formats are the server's business (it validates again); unknown keywords and formats must not
// make a server's tool unusable, hence strict off.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });

export type JsonObjectSchema = { type: 'object'; [key: string]: unknown };

export interface CompiledInputSchema {
  /** The schema sent to the model (`input_schema`), without `$schema`. */
  jsonSchema: JsonObjectSchema;
  zod: z.ZodType<Record<string, unknown>>;
  /** Drops the compiled validator from Ajv's cache (a tool the server no longer lists). */
  release(): void;
}

/** Throws with the reason when the schema is not an object schema Ajv can compile. */
export function compileInputSchema(schema: unknown): CompiledInputSchema {
  if (typeof schema !== 'object' || schema === null || (schema as { type?: unknown }).type !== 'object') {
    throw new Error('inputSchema must be a JSON Schema with "type": "object"');
  }
  const { $schema: _dialect, ...jsonSchema } = schema as JsonObjectSchema & { $schema?: unknown };
  // Draft-07 schemas (what most servers built with zod-to-json-schema send) validate the same way
  // under 2020-12 for everything tools use; the dialect marker itself is dropped.
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(jsonSchema);
  } catch (err) {
    throw new Error(`inputSchema cannot be compiled: ${(err as Error).message}`);
  }
  const zodSchema = z.custom<Record<string, unknown>>().superRefine((value, ctx) => {
    if (validate(value)) return;
    for (const error of validate.errors ?? []) {
      ctx.addIssue({ code: 'custom', message: describe(error), path: pathOf(error) });
    }
  });
  return {
    jsonSchema: jsonSchema as JsonObjectSchema,
    zod: zodSchema,
    release: () => {
      ajv.removeSchema(jsonSchema);
    },
  };
}

/** `/items/0/name` → `['items', 0, 'name']`; a missing property is named in the path itself. */
function pathOf(error: ErrorObject): (string | number)[] {
  const path = error.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  if (error.keyword === 'required') path.push(String(error.params.missingProperty));
  if (error.keyword === 'additionalProperties') path.push(String(error.params.additionalProperty));
  return path;
}

function describe(error: ErrorObject): string {
  switch (error.keyword) {
    case 'required':
      return 'required';
    case 'additionalProperties':
      return 'not allowed (unknown property)';
    default:
      return error.message ?? error.keyword;
  }
}
