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
import { parseApiTokens, parseNamedTokens } from './tokens.ts';
import { parseToolSets } from './tool-sets.ts';

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

/** Each variable's doc comment (and `@default`, where it needs words) is its row of docs/configuration.md. */
const envSchema = z.object({
  /** Redis to use (standalone). The demo and the tests start a private one. @default `redis://127.0.0.1:6379`
   * for the CLIs */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  /** Seed nodes of a Redis Cluster (a few are enough); selects cluster mode, over REDIS_URL. */
  REDIS_CLUSTER_NODES: addressList.optional(),
  /** Sentinels watching REDIS_SENTINEL_MASTER; selects Sentinel mode, over REDIS_URL. */
  REDIS_SENTINELS: addressList.optional(),
  /** The name the sentinels monitor the master under (required with REDIS_SENTINELS). */
  REDIS_SENTINEL_MASTER: z.string().min(1).max(200).optional(),
  /** ACL user of the data nodes (a REDIS_URL's own credentials win). @default unset (Redis's default user) */
  REDIS_USERNAME: z.string().min(1).optional(),
  /** Password of the data nodes (requirepass, or the ACL user's); a REDIS_URL's own wins. Never logged. */
  REDIS_PASSWORD: z.string().min(1).optional(),
  /** The sentinels' own password, when it differs from REDIS_PASSWORD. @default REDIS_PASSWORD */
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  /** TLS to every node and sentinel (`rediss://` turns it on for REDIS_URL by itself, REDIS_TLS_CA_FILE for
   * every mode). Certificates are always verified. @default `false` */
  REDIS_TLS: flag.optional(),
  /** PEM CA bundle trusted instead of Node's built-in CAs (a private CA); implies TLS. Read once at start: a
   * bad file stops the process. @default Node's CAs */
  REDIS_TLS_CA_FILE: z.string().min(1).optional(),
  /** Key prefix of every Redis key: fleets with different prefixes share a Redis apart. */
  TOOLQ_PREFIX: keyPart.default(DEFAULTS.prefix),
  /** Queue (pool) a worker serves; a coordinator routes each call to a pool that serves its tool. */
  TOOLQ_POOL: keyPart.default(DEFAULTS.pool),
  /** The pool may scale to zero: its calls wait in the queue (within their deadlines) for a worker to start
   * (KEDA). Otherwise a call for a tool without a live worker is answered is_error at once.
   * @default unset (`false`) */
  TOOLQ_WAIT_FOR_WORKERS: z.enum(['true', 'false', '1', '0']).optional(),
  /** BullMQ jobs one worker runs at once, per queue it consumes (its pool's and its lane); a job is a call,
   * or a chunk of at most 16 calls of one batch. */
  TOOLQ_CONCURRENCY: intFrom(1, 10_000).default(DEFAULTS.concurrency),
  /** Coordinator HTTP listen address. Without tokens keep it on loopback. */
  TOOLQ_HOST: z.string().min(1).default(DEFAULTS.host),
  /** Coordinator HTTP port (0: any free one, printed in its `listening` line). */
  TOOLQ_PORT: intFrom(0, 65535).default(DEFAULTS.port),
  /** Worker /metrics, /healthz and /readyz port; 0 = any free one (printed in its `listening` line), so
   * several workers share a host. deploy/ sets 9464. */
  TOOLQ_METRICS_PORT: intFrom(0, 65535).default(DEFAULTS.metricsPort),
  /** Worker metrics listen address; it has no token, so it stays on loopback unless set (0.0.0.0 where
   * Prometheus scrapes from another machine, as in deploy/). */
  TOOLQ_METRICS_HOST: z.string().min(1).default(DEFAULTS.metricsHost),
  /** Bearer token of the HTTP API; its app is `default`. Without any token the coordinator serves loopback
   * only. @default unset */
  TOOLQ_API_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** `name:token,…` (16+ characters): a bearer token per app; an app sees only its own runs and batches. */
  TOOLQ_API_TOKENS: z.string().min(1).optional(),
  /** `name:token,…` (16+ characters, none an app's): the operators' bearer tokens, for /metrics and
   * /admin/queues only. An app token there is 403, an operator token on the app API too. */
  TOOLQ_OPERATOR_TOKENS: z.string().min(1).optional(),
  /** Host names (comma-separated) a Host or Origin header may name besides localhost, 127.0.0.1 and [::1]
   * when no token is set; others are 403 HOST_NOT_ALLOWED. With tokens any Host is served. */
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
  /** How long a run's record, events and index entry are kept after it finished (a running one never
   * expires). */
  TOOLQ_RUN_RETENTION_MS: intFrom(1_000, 365 * 24 * 3600_000).default(DEFAULTS.runRetentionMs),
  /** A run whose coordinator died is taken over by another within this long. */
  TOOLQ_RUN_TAKEOVER_MS: intFrom(1_500, 3600_000).default(DEFAULTS.runTakeoverMs),
  /** Runs one coordinator runs at once (its run slots); waiting runs are taken in turns between apps. */
  TOOLQ_RUN_CONCURRENCY: intFrom(1, 100_000).default(DEFAULTS.runConcurrency),
  /** A run waiting only for approvals parks (gives its run slot and lease back, docs/approvals.md) when
   * the soonest of them expires at least this far ahead; sooner ones are waited for in the process. */
  TOOLQ_RUN_PARK_MIN_MS: intFrom(1_000, 2_147_483_647).default(DEFAULTS.runParkMinMs),
  /** Largest POST /v1/runs body as JSON; larger is 413 RUN_TOO_LARGE naming the largest part. */
  TOOLQ_MAX_RUN_INPUT_BYTES: intFrom(1_000, 100_000_000).default(DEFAULTS.maxRunInputBytes),
  /** Runs of one app not finished yet (running or waiting), fleet-wide; one more is 429 TOO_MANY_RUNS. */
  TOOLQ_MAX_ACTIVE_RUNS_PER_APP: intFrom(1, 1_000_000).default(DEFAULTS.maxActiveRunsPerApp),
  /** How long a model request may take to answer (a streamed turn: its first byte; a JSON turn: all of it);
   * the SDK retries a timeout twice, then the run fails with MODEL_ERROR. */
  TOOLQ_MODEL_TIMEOUT_MS: intFrom(1_000, 3600_000).default(DEFAULTS.modelTimeoutMs),
  /** SSE streams of run events an app may have open on one coordinator; one more is 429 TOO_MANY_STREAMS. */
  TOOLQ_MAX_STREAMS_PER_APP: intFrom(1, 1_000_000).default(DEFAULTS.maxStreamsPerApp),
  /** Stable id, so that a restarted coordinator reads its own reply stream again. @default
   * `<host>-<pid>-<random>` */
  TOOLQ_COORDINATOR_ID: keyPart.optional(),
  /** Timeout of a tool that declares none. */
  TOOLQ_DEFAULT_TIMEOUT_MS: intFrom(1, 24 * 3600_000).default(DEFAULTS.defaultTimeoutMs),
  /** Largest result of one call (serialised); a larger one becomes is_error. */
  TOOLQ_MAX_RESULT_BYTES: intFrom(1, 100_000_000).default(DEFAULTS.maxResultBytes),
  /** Largest HTTP request body (413 beyond). */
  TOOLQ_BODY_LIMIT_BYTES: intFrom(1, 1_000_000_000).default(DEFAULTS.bodyLimitBytes),
  /** How long an answered batch stays collectable (GET /v1/tool-batches/{id}, collect()). Costs the results'
   * size plus about 650 bytes a call (1,000 batches of 5 small calls held 3.26 MB). */
  TOOLQ_BATCH_RETENTION_MS: intFrom(1, 24 * 3600_000).default(DEFAULTS.batchRetentionMs),
  /** A worker whose heartbeat (every 2 s) is older than this is taken for dead: its started at-most-once
   * calls are answered "outcome unknown", its other calls run again (docs/delivery.md). At least 2500. */
  TOOLQ_DEAD_WORKER_AFTER_MS: intFrom(2_500, 3600_000).default(DEFAULTS.deadWorkerAfterMs),
  /** A worker whose own thread still beats but whose event loop has not run for this long (blocked by a tool,
   * starved by load) is taken for dead (docs/delivery.md). Never shorter than TOOLQ_DEAD_WORKER_AFTER_MS. */
  TOOLQ_STALLED_WORKER_AFTER_MS: intFrom(2_500, 3600_000).default(DEFAULTS.stalledWorkerAfterMs),
  /** How long each queue keeps completed jobs for the admin page's recent history (0: removed at once). */
  TOOLQ_JOB_HISTORY_MS: intFrom(0, 24 * 3600_000).default(DEFAULTS.jobHistoryMs),
  /** At most this many completed jobs kept per queue (failed jobs stay an hour, at most 1,000 a queue). */
  TOOLQ_JOB_HISTORY_COUNT: intFrom(0, 100_000).default(DEFAULTS.jobHistoryCount),
  /** Most result content one batch answers with; results past it become is_error saying so. */
  TOOLQ_MAX_BATCH_RESULT_BYTES: intFrom(1, 1_000_000_000).default(DEFAULTS.maxBatchResultBytes),
  /** How long a client may take to send a request's headers and body (408 beyond). */
  TOOLQ_REQUEST_TIMEOUT_MS: intFrom(1_000, 3600_000).default(DEFAULTS.requestTimeoutMs),
  /** How long a graceful shutdown lets running work finish before handing it back or cancelling it. */
  TOOLQ_SHUTDOWN_TIMEOUT_MS: intFrom(0, 3600_000).default(DEFAULTS.shutdownTimeoutMs),
  /** Log level of the pino JSON lines on stdout. */
  TOOLQ_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Model of the agent loop (runAgent, runs) when the caller names none. @default `DEFAULT_MODEL` (exported
   * by the coordinator package) */
  TOOLQ_MODEL: z.string().min(1).optional(),
  /** API key of the Messages API for agent runs: it is what enables /v1/runs. Unset, POST /v1/runs answers
   * 503 NO_MODEL (there is no offline fallback). Never logged. @default unset: runs answer `503 NO_MODEL` */
  ANTHROPIC_API_KEY: z.string().min(1).optional(),
  /** Where the agent loop sends model requests (a gateway, or the scripted model of your tests). It needs
   * ANTHROPIC_API_KEY beside it (a placeholder if the gateway wants none): alone, runs answer 503 NO_MODEL.
   * @default the SDK's (`https://api.anthropic.com`) */
  ANTHROPIC_BASE_URL: z.url().optional(),
  /** Named tool sets a durable run asks for by `tool_set`: `name:tool,tool; name:tool` (docs/tool-sets.md). */
  TOOLQ_TOOL_SETS: z.string().min(1).optional(),
  /** `true`: retries, removals and cleaning on /admin/queues; otherwise each write there is 403 READ_ONLY. */
  TOOLQ_ADMIN_WRITE: z.enum(['true', 'false']).default('false'),
  /** OTLP/HTTP collector (http://otel-collector:4318): traces are exported only when set. @default unset: no
   * tracing */
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
  runParkMinMs: number;
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
  stalledWorkerAfterMs: number;
  jobHistoryMs: number;
  jobHistoryCount: number;
  maxBatchResultBytes: number;
  requestTimeoutMs: number;
  logLevel: ToolqEnv['TOOLQ_LOG_LEVEL'];
  model: string | undefined;
  anthropicApiKey: string | undefined;
  anthropicBaseUrl: string | undefined;
  /** Tool set name → its tool names, from TOOLQ_TOOL_SETS (empty when unset). */
  toolSets: Map<string, readonly string[]>;
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
    runParkMinMs: e.TOOLQ_RUN_PARK_MIN_MS,
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
    stalledWorkerAfterMs: e.TOOLQ_STALLED_WORKER_AFTER_MS,
    jobHistoryMs: e.TOOLQ_JOB_HISTORY_MS,
    jobHistoryCount: e.TOOLQ_JOB_HISTORY_COUNT,
    maxBatchResultBytes: e.TOOLQ_MAX_BATCH_RESULT_BYTES,
    requestTimeoutMs: e.TOOLQ_REQUEST_TIMEOUT_MS,
    logLevel: e.TOOLQ_LOG_LEVEL,
    model: e.TOOLQ_MODEL,
    anthropicApiKey: e.ANTHROPIC_API_KEY,
    anthropicBaseUrl: e.ANTHROPIC_BASE_URL,
    toolSets: parseToolSets(e.TOOLQ_TOOL_SETS, (why) => {
      throw new ToolqError('CONFIG_INVALID', `invalid environment: TOOLQ_TOOL_SETS: ${why}`);
    }),
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
