/**
 * Configuration from the environment, parsed once, in one place. The defaults are in defaults.ts.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULTS } from './defaults.ts';
import { ToolqError } from './errors.ts';
import { processId } from './ids.ts';
import { KEY_PART_PATTERN } from './keys.ts';
import type { RedisAddress, RedisConnectionConfig } from './redis.ts';
import { describeZodIssues } from './result-encoding.ts';

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const keyPart = z.string().regex(KEY_PART_PATTERN, 'use letters, digits, _ . - (at most 100)');

/** `host:port,host:port,…` (IPv6 as `[::1]:7000`); says which entry is wrong. */
const addressList = z.string().transform((value, ctx): RedisAddress[] => {
  const out: RedisAddress[] = [];
  value.split(',').forEach((raw, i) => {
    const entry = raw.trim();
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match?.[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `entry ${i + 1} (${JSON.stringify(entry)}) is not host:port` });
      return;
    }
    out.push({ host: match[1].replace(/^\[|\]$/g, ''), port });
  });
  return out;
});
/** A DNS name or an IP literal (IPv6 in brackets), without a port. */
const HOST_NAME =
  /^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*|\[[0-9a-f:.]+\])$/;
const flag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'use true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const envSchema = z.object({
  /** Redis to use. Unset: the demo starts a private redis-server; other commands use localhost:6379. */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  /** Seed nodes of a Redis Cluster; selects cluster mode (over REDIS_URL). */
  REDIS_CLUSTER_NODES: addressList.optional(),
  /** Sentinels watching REDIS_SENTINEL_MASTER; selects Sentinel mode (over REDIS_URL). */
  REDIS_SENTINELS: addressList.optional(),
  REDIS_SENTINEL_MASTER: z.string().min(1).max(200).optional(),
  /** Credentials of the data nodes (a REDIS_URL's own credentials win in standalone mode). */
  REDIS_USERNAME: z.string().min(1).optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
  /** The sentinels' own password, when it differs from REDIS_PASSWORD. */
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  /** TLS to every node (`rediss://` turns it on for REDIS_URL by itself). */
  REDIS_TLS: flag.optional(),
  /** PEM CA bundle to trust for TLS (a private CA); implies TLS. Read once, here. */
  REDIS_TLS_CA_FILE: z.string().min(1).optional(),
  /** Key prefix of every Redis key. */
  TOOLQ_PREFIX: keyPart.default(DEFAULTS.prefix),
  /** Queue (pool) a worker serves. */
  TOOLQ_POOL: keyPart.default(DEFAULTS.pool),
  /**
   * A worker of this pool says: its calls may wait in the queue (within their deadlines) while no
   * worker is alive, for one to start (KEDA scaling from zero). Default: answered is_error at once.
   */
  TOOLQ_WAIT_FOR_WORKERS: z.enum(['true', 'false', '1', '0']).optional(),
  /** Jobs one worker process runs at once. */
  TOOLQ_CONCURRENCY: intFrom(1, 10_000).default(DEFAULTS.concurrency),
  /** Coordinator HTTP listen address. */
  TOOLQ_HOST: z.string().min(1).default(DEFAULTS.host),
  TOOLQ_PORT: intFrom(0, 65535).default(DEFAULTS.port),
  /** Worker metrics/health port (0 = any free port). */
  TOOLQ_METRICS_PORT: intFrom(0, 65535).default(DEFAULTS.metricsPort),
  /** Worker metrics/health listen address. */
  TOOLQ_METRICS_HOST: z.string().min(1).default(DEFAULTS.metricsHost),
  /** Bearer token for the HTTP API. Unset: the API listens on loopback only. */
  TOOLQ_API_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** `name:token,...`: one bearer token per app; each app sees only its own runs and batches. */
  TOOLQ_API_TOKENS: z.string().min(1).optional(),
  /**
   * `name:token,...`: the operators' bearer tokens, for the queue admin page and /metrics (and
   * only those). An app token there answers 403.
   */
  TOOLQ_OPERATOR_TOKENS: z.string().min(1).optional(),
  /**
   * Host names (comma-separated) a request may name in its Host header besides localhost,
   * 127.0.0.1 and [::1], when no token is set. With tokens any Host is served.
   */
  TOOLQ_ALLOWED_HOSTS: z
    .string()
    .transform((value, ctx) => {
      const hosts = value.split(',').map((h) => h.trim().toLowerCase());
      hosts.forEach((host, i) => {
        if (!HOST_NAME.test(host))
          ctx.addIssue({
            code: 'custom',
            message: `entry ${i + 1} (${JSON.stringify(host)}) is not a host name`,
          });
      });
      return hosts;
    })
    .optional(),
  /** How long a run's record and events are kept after it finished (a running run never expires). */
  TOOLQ_RUN_RETENTION_MS: intFrom(1_000, 365 * 24 * 3600_000).default(DEFAULTS.runRetentionMs),
  /** A run whose coordinator died is taken over by another within this long. */
  TOOLQ_RUN_TAKEOVER_MS: intFrom(1_500, 3600_000).default(DEFAULTS.runTakeoverMs),
  /** Runs this coordinator runs at once; more wait, each app's in turn. */
  TOOLQ_RUN_CONCURRENCY: intFrom(1, 100_000).default(DEFAULTS.runConcurrency),
  /** Largest POST /v1/runs input (the request as JSON); larger ones are refused with 413. */
  TOOLQ_MAX_RUN_INPUT_BYTES: intFrom(1_000, 100_000_000).default(DEFAULTS.maxRunInputBytes),
  /** Runs of one app not finished yet, fleet-wide; one more is refused with 429. */
  TOOLQ_MAX_ACTIVE_RUNS_PER_APP: intFrom(1, 1_000_000).default(DEFAULTS.maxActiveRunsPerApp),
  /** How long the agent loop waits for a model request to answer (per attempt). */
  TOOLQ_MODEL_TIMEOUT_MS: intFrom(1_000, 3600_000).default(DEFAULTS.modelTimeoutMs),
  /** SSE streams of run events one app may have open on one coordinator; past it, 429 TOO_MANY_STREAMS. */
  TOOLQ_MAX_STREAMS_PER_APP: intFrom(1, 1_000_000).default(DEFAULTS.maxStreamsPerApp),
  /** Stable coordinator id, so that a restarted coordinator finds its reply stream again. */
  TOOLQ_COORDINATOR_ID: keyPart.optional(),
  /** Default per-call timeout. */
  TOOLQ_DEFAULT_TIMEOUT_MS: intFrom(1, 24 * 3600_000).default(DEFAULTS.defaultTimeoutMs),
  /** Largest tool result a worker hands back. */
  TOOLQ_MAX_RESULT_BYTES: intFrom(1, 100_000_000).default(DEFAULTS.maxResultBytes),
  /** Largest HTTP request body. */
  TOOLQ_BODY_LIMIT_BYTES: intFrom(1, 1_000_000_000).default(DEFAULTS.bodyLimitBytes),
  /**
   * How long a batch's record stays in Redis after the batch was answered (for
   * GET /v1/tool-batches/:id and collect()). Costs the results' size plus about 650 bytes a call.
   */
  TOOLQ_BATCH_RETENTION_MS: intFrom(1, 24 * 3600_000).default(DEFAULTS.batchRetentionMs),
  /**
   * A worker whose heartbeat (every 2 s) is older than this is taken for dead: its started
   * at-most-once calls are answered "outcome unknown", its other calls run again (docs/delivery.md).
   */
  TOOLQ_DEAD_WORKER_AFTER_MS: intFrom(2_500, 3600_000).default(DEFAULTS.deadWorkerAfterMs),
  /** Most bytes of result content one batch answers with; results past it become errors. */
  TOOLQ_MAX_BATCH_RESULT_BYTES: intFrom(1, 1_000_000_000).default(DEFAULTS.maxBatchResultBytes),
  /** How long a client may take to send a request's headers and body. */
  TOOLQ_REQUEST_TIMEOUT_MS: intFrom(1_000, 3600_000).default(DEFAULTS.requestTimeoutMs),
  /** How long a graceful shutdown waits for running work before forcing. */
  TOOLQ_SHUTDOWN_TIMEOUT_MS: intFrom(0, 3600_000).default(DEFAULTS.shutdownTimeoutMs),
  TOOLQ_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  TOOLQ_MODEL: z.string().min(1).optional(),
  ANTHROPIC_API_KEY: z.string().min(1).optional(),
  ANTHROPIC_BASE_URL: z.url().optional(),
  /** Retries and removals on the queue admin page (/admin/queues); otherwise it is read-only. */
  TOOLQ_ADMIN_WRITE: z.enum(['true', 'false']).default('false'),
  /** OTLP/HTTP collector (e.g. http://collector:4318): traces are exported only when set. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
});

export type ToolqEnv = z.output<typeof envSchema>;

export interface ToolqConfig {
  /** Where every connection goes: REDIS_CLUSTER_NODES, else REDIS_SENTINELS, else REDIS_URL. */
  redis: RedisConnectionConfig;
  /** REDIS_URL as given (standalone mode, or unset). */
  redisUrl: string | undefined;
  prefix: string;
  pool: string;
  waitForWorkers: boolean;
  concurrency: number;
  host: string;
  port: number;
  metricsPort: number;
  metricsHost: string;
  apiToken: string | undefined;
  /** App name → token, from TOOLQ_API_TOKENS (empty when unset). */
  apiTokens: Map<string, string>;
  /** Operator name → token, from TOOLQ_OPERATOR_TOKENS (empty when unset). */
  operatorTokens: Map<string, string>;
  /** Host names served without tokens besides the loopback names (TOOLQ_ALLOWED_HOSTS). */
  allowedHosts: string[];
  runRetentionMs: number;
  runTakeoverMs: number;
  runConcurrency: number;
  maxRunInputBytes: number;
  maxActiveRunsPerApp: number;
  modelTimeoutMs: number;
  maxStreamsPerApp: number;
  coordinatorId: string;
  defaultTimeoutMs: number;
  maxResultBytes: number;
  bodyLimitBytes: number;
  shutdownTimeoutMs: number;
  batchRetentionMs: number;
  deadWorkerAfterMs: number;
  maxBatchResultBytes: number;
  requestTimeoutMs: number;
  logLevel: ToolqEnv['TOOLQ_LOG_LEVEL'];
  model: string | undefined;
  anthropicApiKey: string | undefined;
  anthropicBaseUrl: string | undefined;
  adminWrite: boolean;
  otlpEndpoint: string | undefined;
}

/** Empty strings count as unset, as they do in most shells' `VAR= cmd`. */
function withoutEmpty(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== '') out[key] = value;
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ToolqConfig {
  const parsed = envSchema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    throw new ToolqError('CONFIG_INVALID', `invalid environment: ${describeZodIssues(parsed.error, 20)}`);
  }
  const e = parsed.data;
  const apiTokens = parseApiTokens(e.TOOLQ_API_TOKENS, e.TOOLQ_API_TOKEN);
  return {
    redis: redisConnectionFrom(e),
    redisUrl: e.REDIS_URL,
    prefix: e.TOOLQ_PREFIX,
    pool: e.TOOLQ_POOL,
    waitForWorkers: e.TOOLQ_WAIT_FOR_WORKERS === 'true' || e.TOOLQ_WAIT_FOR_WORKERS === '1',
    concurrency: e.TOOLQ_CONCURRENCY,
    host: e.TOOLQ_HOST,
    port: e.TOOLQ_PORT,
    metricsPort: e.TOOLQ_METRICS_PORT,
    metricsHost: e.TOOLQ_METRICS_HOST,
    apiToken: e.TOOLQ_API_TOKEN,
    apiTokens,
    operatorTokens: parseNamedTokens(e.TOOLQ_OPERATOR_TOKENS, {
      variable: 'TOOLQ_OPERATOR_TOKENS',
      what: 'operator',
      // A token that is both would open the app API and the operator routes alike.
      taken: [...(e.TOOLQ_API_TOKEN === undefined ? [] : [e.TOOLQ_API_TOKEN]), ...apiTokens.values()],
      takenBy: 'an app (TOOLQ_API_TOKEN or TOOLQ_API_TOKENS)',
    }),
    allowedHosts: e.TOOLQ_ALLOWED_HOSTS ?? [],
    runRetentionMs: e.TOOLQ_RUN_RETENTION_MS,
    runTakeoverMs: e.TOOLQ_RUN_TAKEOVER_MS,
    runConcurrency: e.TOOLQ_RUN_CONCURRENCY,
    maxRunInputBytes: e.TOOLQ_MAX_RUN_INPUT_BYTES,
    maxActiveRunsPerApp: e.TOOLQ_MAX_ACTIVE_RUNS_PER_APP,
    modelTimeoutMs: e.TOOLQ_MODEL_TIMEOUT_MS,
    maxStreamsPerApp: e.TOOLQ_MAX_STREAMS_PER_APP,
    coordinatorId: e.TOOLQ_COORDINATOR_ID ?? defaultCoordinatorId(),
    defaultTimeoutMs: e.TOOLQ_DEFAULT_TIMEOUT_MS,
    maxResultBytes: e.TOOLQ_MAX_RESULT_BYTES,
    bodyLimitBytes: e.TOOLQ_BODY_LIMIT_BYTES,
    shutdownTimeoutMs: e.TOOLQ_SHUTDOWN_TIMEOUT_MS,
    batchRetentionMs: e.TOOLQ_BATCH_RETENTION_MS,
    deadWorkerAfterMs: e.TOOLQ_DEAD_WORKER_AFTER_MS,
    maxBatchResultBytes: e.TOOLQ_MAX_BATCH_RESULT_BYTES,
    requestTimeoutMs: e.TOOLQ_REQUEST_TIMEOUT_MS,
    logLevel: e.TOOLQ_LOG_LEVEL,
    model: e.TOOLQ_MODEL,
    anthropicApiKey: e.ANTHROPIC_API_KEY,
    anthropicBaseUrl: e.ANTHROPIC_BASE_URL,
    adminWrite: e.TOOLQ_ADMIN_WRITE === 'true',
    otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
  };
}

/** Cluster or Sentinel when configured (they take precedence over REDIS_URL), else standalone. */
function redisConnectionFrom(e: ToolqEnv): RedisConnectionConfig {
  const common = { username: e.REDIS_USERNAME, password: e.REDIS_PASSWORD, tls: tlsFrom(e) };
  if (e.REDIS_CLUSTER_NODES && e.REDIS_SENTINELS) {
    throw new ToolqError(
      'CONFIG_INVALID',
      'invalid environment: REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set; set one of them',
    );
  }
  if (e.REDIS_CLUSTER_NODES) return { mode: 'cluster', nodes: e.REDIS_CLUSTER_NODES, ...common };
  if (e.REDIS_SENTINELS) {
    if (!e.REDIS_SENTINEL_MASTER) {
      throw new ToolqError(
        'CONFIG_INVALID',
        'invalid environment: REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER (the name the sentinels monitor) is not',
      );
    }
    return {
      mode: 'sentinel',
      sentinels: e.REDIS_SENTINELS,
      masterName: e.REDIS_SENTINEL_MASTER,
      ...common,
      ...(e.REDIS_SENTINEL_PASSWORD ? { sentinelCredentials: { password: e.REDIS_SENTINEL_PASSWORD } } : {}),
    };
  }
  if (e.REDIS_SENTINEL_MASTER) {
    throw new ToolqError(
      'CONFIG_INVALID',
      'invalid environment: REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS (host:port,…) is not',
    );
  }
  return { mode: 'standalone', url: e.REDIS_URL, ...common };
}

function tlsFrom(e: ToolqEnv): RedisConnectionConfig['tls'] {
  if (e.REDIS_TLS_CA_FILE === undefined) return e.REDIS_TLS;
  if (e.REDIS_TLS === false) {
    throw new ToolqError(
      'CONFIG_INVALID',
      'invalid environment: REDIS_TLS is false but REDIS_TLS_CA_FILE is set (a CA file means TLS); unset one of them',
    );
  }
  return { ca: readCaFile(e.REDIS_TLS_CA_FILE) };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * The file's certificates, checked here so that a wrong path or file fails at startup with the
 * variable's name instead of as a TLS error on every reconnect. Messages name the path, never the
 * contents (a bundle is public, but a key pasted by mistake is not).
 */
function readCaFile(path: string): string {
  const fail = (why: string): never => {
    throw new ToolqError('CONFIG_INVALID', `invalid environment: REDIS_TLS_CA_FILE: ${path} ${why}`);
  };
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) fail('holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch {
      fail(`holds a PEM block that is not a certificate (certificate ${i + 1})`);
    }
  });
  return `${blocks.join('\n')}\n`;
}

export function defaultCoordinatorId(): string {
  return processId();
}

const TOKEN_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * `name:token,...`. Messages name the entry by position and app, never the token: configuration
 * errors end up in logs. The single TOOLQ_API_TOKEN is the app `default`, so no entry may take it.
 */
export function parseApiTokens(raw: string | undefined, single?: string): Map<string, string> {
  return parseNamedTokens(raw, {
    variable: 'TOOLQ_API_TOKENS',
    what: 'app',
    taken: single === undefined ? [] : [single],
    takenBy: 'another app',
    reserved: single === undefined ? undefined : { name: 'default', why: 'is the app of TOOLQ_API_TOKEN' },
  });
}

/** `name:token,...` of `variable`; no token may be one of `taken` or repeat. Never prints a token. */
function parseNamedTokens(
  raw: string | undefined,
  options: {
    variable: string;
    /** What a name names, in messages: `app`, `operator`. */
    what: string;
    taken: readonly string[];
    /** Who holds the `taken` tokens, in messages. */
    takenBy: string;
    reserved?: { name: string; why: string } | undefined;
  },
): Map<string, string> {
  const tokens = new Map<string, string>();
  if (raw === undefined) return tokens;
  const { what } = options;
  const fail = (why: string) => {
    throw new ToolqError('CONFIG_INVALID', `invalid environment: ${options.variable}: ${why}`);
  };
  const taken = new Set(options.taken);
  const seen = new Set<string>();
  raw.split(',').forEach((entry, i) => {
    const at = entry.indexOf(':');
    const name = entry.slice(0, Math.max(0, at)).trim();
    const token = entry.slice(at + 1).trim();
    if (at < 0) fail(`entry ${i + 1} is not name:token`);
    if (!TOKEN_NAME.test(name)) fail(`entry ${i + 1}: the ${what} name must be 1-64 letters, digits, _ . -`);
    if (name === options.reserved?.name)
      fail(`entry ${i + 1}: "${name}" ${options.reserved.why}; use another name`);
    if (tokens.has(name)) fail(`entry ${i + 1}: ${what} ${name} is named twice`);
    if (token.length < 16) fail(`entry ${i + 1} (${what} ${name}): the token must be at least 16 characters`);
    if (seen.has(token)) fail(`entry ${i + 1} (${what} ${name}): the token is used by another ${what}`);
    if (taken.has(token)) fail(`entry ${i + 1} (${what} ${name}): the token is used by ${options.takenBy}`);
    seen.add(token);
    tokens.set(name, token);
  });
  return tokens;
}
