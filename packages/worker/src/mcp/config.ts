/**
 * The `--mcp <config.json>` file: the `mcpServers` format of Claude Desktop and Claude Code (per
 * server `command`/`args`/`env`/`cwd`, or `"type": "http"` with `url`/`headers`), plus toolq's own
 * settings under a `toolq` key of each entry, so the same file still works in those clients.
 * `${VAR}` in `args`, `env`, `cwd`, `url` and `headers` is taken from the environment (secrets stay
 * out of the file and out of the logs).
 */
import { readFile } from 'node:fs/promises';
import { ToolqError } from '@toolq/shared';
import { concurrencySchema, rateLimitSchema } from '@toolq/shared/internal';
import { z } from 'zod';
import { sanitiseNamePart } from './names.ts';

const positiveInt = z.number().int().positive();
const deliverySchema = z.enum(['at-least-once', 'at-most-once']);

/** toolq's settings for one server; every default is here. */
const toolqSettingsSchema = z
  .object({
    /** Per-call timeout of the server's tools (the call's deadline can cut it shorter). Default 30 000 ms. */
    timeoutMs: positiveInt.max(24 * 3600_000).default(30_000),
    /** Most calls in flight on the connection; more wait for a slot (within their deadline). Default 16. */
    maxInFlight: positiveInt.max(10_000).default(16),
    /** Only these MCP tool names are served (default: all). */
    allow: z.array(z.string().min(1)).optional(),
    /** These MCP tool names are never served. */
    deny: z.array(z.string().min(1)).default([]),
    /**
     * Retries under a batch's `retry` policy, only for tools annotated `idempotentHint` or
     * `readOnlyHint`; other tools are never retried. Default 3 attempts, 200 ms doubling.
     */
    retry: z
      .object({ attempts: positiveInt.max(10).default(3), backoffMs: z.number().int().min(0).default(200) })
      .strict()
      .default({ attempts: 3, backoffMs: 200 }),
    /**
     * Fleet-wide flow limits per MCP tool name (as the server names it), like defineTool's
     * `concurrency` and `rateLimit` (docs/flow-control.md). `"*"` applies to every tool of the server
     * that has no entry of its own.
     */
    limits: z
      .record(
        z.string().min(1),
        z
          .object({ concurrency: concurrencySchema.optional(), rateLimit: rateLimitSchema.optional() })
          .strict(),
      )
      .default({}),
    /**
     * How the server's tools are delivered (docs/delivery.md), overriding their annotations
     * (`idempotentHint` or `readOnlyHint`: at-least-once; otherwise at-most-once): one mode for
     * every tool of the server, or per MCP tool name (tools not named follow their annotations).
     */
    delivery: z.union([deliverySchema, z.record(z.string().min(1), deliverySchema)]).optional(),
    /** How long connecting (spawn + initialize + tools/list) may take. Default 20 000 ms. */
    startupTimeoutMs: positiveInt.max(600_000).default(20_000),
    /**
     * HTTP servers only: a `ping` this often while idle or busy, so a server that went away leaves
     * the catalog before a call finds out. 0 turns it off. Default 15 000 ms.
     */
    pingIntervalMs: z.number().int().min(0).default(15_000),
    /** Restart (stdio) or reconnect (http) after a failure, waiting 500 ms doubling up to maxBackoffMs. */
    restart: z
      .object({
        enabled: z.boolean().default(true),
        initialBackoffMs: z.number().int().min(0).default(500),
        maxBackoffMs: positiveInt.default(30_000),
      })
      .strict()
      .default({ enabled: true, initialBackoffMs: 500, maxBackoffMs: 30_000 }),
  })
  .strict();

export type McpToolqSettings = z.output<typeof toolqSettingsSchema>;

const stringMap = z.record(z.string(), z.string());

const stdioSchema = z
  .object({
    type: z.literal('stdio').optional(),
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: stringMap.default({}),
    cwd: z.string().min(1).optional(),
    toolq: toolqSettingsSchema.default(toolqSettingsSchema.parse({})),
  })
  .strict();

const httpSchema = z
  .object({
    type: z.enum(['http', 'streamable-http', 'streamableHttp']),
    /** Checked after `${VAR}` expansion. */
    url: z.string().min(1),
    headers: stringMap.default({}),
    toolq: toolqSettingsSchema.default(toolqSettingsSchema.parse({})),
  })
  .strict();

export type McpStdioServerConfig = { name: string; transport: 'stdio' } & z.output<typeof stdioSchema>;
export type McpHttpServerConfig = { name: string; transport: 'http' } & z.output<typeof httpSchema>;
export type McpServerConfig = McpStdioServerConfig | McpHttpServerConfig;

const fileSchema = z.object({ mcpServers: z.record(z.string(), z.unknown()) }).loose();

const configError = (source: string, message: string) =>
  new ToolqError('CONFIG_INVALID', `MCP config ${source}: ${message}`);

/** Reads and checks a config file; every problem names the server and the field. */
export async function loadMcpConfig(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<McpServerConfig[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw configError(path, `cannot read the file: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw configError(path, `not valid JSON: ${(err as Error).message}`);
  }
  return parseMcpConfig(json, { source: path, env });
}

export function parseMcpConfig(
  json: unknown,
  options: { source: string; env?: NodeJS.ProcessEnv },
): McpServerConfig[] {
  const { source } = options;
  const env = options.env ?? process.env;
  const file = fileSchema.safeParse(json);
  if (!file.success) throw configError(source, 'must be an object with an "mcpServers" object');
  const entries = Object.entries(file.data.mcpServers);
  if (entries.length === 0) throw configError(source, '"mcpServers" names no server');

  const servers: McpServerConfig[] = [];
  const bySanitised = new Map<string, string>();
  for (const [name, raw] of entries) {
    const where = `server ${JSON.stringify(name)}`;
    if (name.length === 0) throw configError(source, 'a server name is empty');
    const key = sanitiseNamePart(name);
    const clash = bySanitised.get(key);
    if (clash !== undefined) {
      throw configError(source, `${where}: its tool names would clash with server ${JSON.stringify(clash)}`);
    }
    bySanitised.set(key, name);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw configError(source, `${where}: must be an object`);
    }
    const entry = raw as Record<string, unknown>;
    const isHttp = entry.type !== undefined && entry.type !== 'stdio';
    if (!isHttp && entry.url !== undefined && entry.command === undefined) {
      throw configError(source, `${where}: type: use "http" for a server with a url`);
    }
    if (entry.type === 'sse') {
      throw configError(
        source,
        `${where}: type: "sse" (the deprecated HTTP+SSE transport) is not supported; use "http"`,
      );
    }
    const parsed = (isHttp ? httpSchema : stdioSchema).safeParse(entry);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.length ? issue.path.map(String).join('.') : '(entry)';
      const message =
        issue?.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue?.message;
      throw configError(source, `${where}: ${field}: ${message}`);
    }
    const expand = (field: string, value: string) =>
      expandEnv(value, env, (v) =>
        configError(source, `${where}: ${field}: environment variable ${v} is not set`),
      );
    if (isHttp) {
      const http = parsed.data as z.output<typeof httpSchema>;
      const url = expand('url', http.url);
      if (!/^https?:\/\//.test(url) || !URL.canParse(url)) {
        throw configError(source, `${where}: url: must be an http:// or https:// URL`);
      }
      servers.push({
        ...http,
        name,
        transport: 'http',
        url,
        headers: Object.fromEntries(
          Object.entries(http.headers).map(([k, v]) => [k, expand(`headers.${k}`, v)]),
        ),
      });
    } else {
      const stdio = parsed.data as z.output<typeof stdioSchema>;
      servers.push({
        ...stdio,
        name,
        transport: 'stdio',
        args: stdio.args.map((a, i) => expand(`args.${i}`, a)),
        env: Object.fromEntries(Object.entries(stdio.env).map(([k, v]) => [k, expand(`env.${k}`, v)])),
        ...(stdio.cwd === undefined ? {} : { cwd: expand('cwd', stdio.cwd) }),
      });
    }
  }
  return servers;
}

/** `${NAME}` (and `${NAME:-default}`) from the environment; a missing variable is a config error. */
function expandEnv(value: string, env: NodeJS.ProcessEnv, missing: (name: string) => Error): string {
  return value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
    (_, name: string, fallback?: string) => {
      const v = env[name];
      if (v !== undefined) return v;
      if (fallback !== undefined) return fallback;
      throw missing(name);
    },
  );
}
