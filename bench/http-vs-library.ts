/**
 * Benchmark 6: what the HTTP front door costs over the library it wraps. The same batches of
 * no-op calls, on the same Redis and worker processes, take turns through
 * `POST /v1/tool-batches` of a real coordinator process (the CLI) over one kept-alive `node:http`
 * connection, through @toolq/client (fetch) to the same process, and through
 * `Dispatcher.dispatch()` in this process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { ToolqClient } from '@toolq/client';
import type { Dispatcher } from '@toolq/coordinator';
import { waitForReadyLine } from '../test-support/ready-line.ts';
import { RUN_SOURCES } from '../test-support/run-sources.ts';
import { stopChild } from '../test-support/stop-child.ts';
import { REPO_ROOT } from './processes.ts';
import { type Summary, summarize } from './stats.ts';
import { echoBatch } from './toolq-runner.ts';

const COORDINATOR_CLI = fileURLToPath(new URL('../packages/coordinator/src/cli.ts', import.meta.url));

export interface HttpConfig {
  batchSizes: number[];
  /** Measured batches per path and size (after warm-up). */
  iterations: Record<number, number>;
  warmup: number;
  /** The paths take turns in blocks of this many batches. */
  block: number;
  timeoutMs: number;
}

export type HttpPath = 'http' | 'client' | 'library';
export const HTTP_PATH_LABEL: Record<HttpPath, string> = {
  http: 'POST /v1/tool-batches (node:http, keep-alive)',
  client: '@toolq/client createToolBatch() (fetch)',
  library: 'Dispatcher.dispatch() in process',
};

export interface HttpRow {
  size: number;
  path: HttpPath;
  /** From the caller's side: request sent → answer parsed (HTTP), or dispatch() → resolved. */
  wall: Summary;
  /** The Dispatcher's own `wall_ms` for the batch (inside the coordinator process for HTTP). */
  dispatcherWall: Summary;
  errors: number;
}

export interface HttpResult {
  rows: HttpRow[];
  /** Round trip of GET /healthz on the same connection: HTTP itself, without a batch. */
  healthz: Summary;
}

/** A coordinator CLI process on the bench's Redis, and a client holding one kept-alive socket to it. */
export interface HttpCoordinator {
  url: string;
  post(path: string, body: unknown): Promise<{ status: number; body: unknown }>;
  get(path: string): Promise<{ status: number; body: unknown }>;
  stop(): Promise<void>;
}

export async function startHttpCoordinator(
  redisUrl: string,
  options: { execArgv?: string[] } = {},
): Promise<HttpCoordinator> {
  const child: ChildProcess = spawn(
    process.execPath,
    [...(options.execArgv ?? []), ...RUN_SOURCES, COORDINATOR_CLI, '--port', '0'],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        REDIS_URL: redisUrl,
        TOOLQ_LOG_LEVEL: process.env.TOOLQ_BENCH_LOG_LEVEL ?? 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const { url } = await waitForReadyLine<{ event: 'ready'; url: string }>(child, exited, 'coordinator');
  const { hostname, port } = new URL(url);
  // One socket, kept alive: what a client sending one batch after another holds.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          agent,
          hostname,
          port,
          method,
          path,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) });
            } catch (err) {
              reject(err);
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return {
    url,
    post: (path, body) => send('POST', path, body),
    get: (path) => send('GET', path),
    stop: async () => {
      agent.destroy();
      await stopChild(child);
    },
  };
}

interface BatchBody {
  tool_results: { is_error?: boolean }[];
  stats: { wall_ms: number };
}

export async function measureHttpVsLibrary(
  redisUrl: string,
  dispatcher: Dispatcher,
  cfg: HttpConfig,
): Promise<HttpResult> {
  const coordinator = await startHttpCoordinator(redisUrl);
  try {
    return await measureWith(coordinator, dispatcher, cfg);
  } finally {
    await coordinator.stop();
  }
}

export async function measureWith(
  coordinator: HttpCoordinator,
  dispatcher: Dispatcher,
  cfg: HttpConfig,
): Promise<HttpResult> {
  const rows: HttpRow[] = [];
  const healthz: number[] = [];
  const client = new ToolqClient({ baseUrl: coordinator.url, retry: { attempts: 1 } });
  for (const size of cfg.batchSizes) {
    const iterations = cfg.iterations[size] ?? 100;
    const samples: Record<HttpPath, { wall: number[]; inner: number[]; errors: number }> = {
      http: { wall: [], inner: [], errors: 0 },
      client: { wall: [], inner: [], errors: 0 },
      library: { wall: [], inner: [], errors: 0 },
    };
    const once = async (path: HttpPath, record: boolean, tag: number) => {
      const uses = echoBatch(size, tag).map((c, i) => ({
        type: 'tool_use' as const,
        id: `toolu_${i}`,
        ...c,
      }));
      let wall: number;
      let inner: number;
      let errors: number;
      if (path === 'http') {
        const t0 = performance.now();
        const res = await coordinator.post('/v1/tool-batches', {
          tool_uses: uses,
          timeout_ms: cfg.timeoutMs,
        });
        wall = performance.now() - t0;
        if (res.status !== 200)
          throw new Error(`POST /v1/tool-batches answered ${res.status}: ${JSON.stringify(res.body)}`);
        const body = res.body as BatchBody;
        inner = body.stats.wall_ms;
        errors = body.tool_results.filter((r) => r.is_error).length;
        if (record) {
          const h0 = performance.now();
          await coordinator.get('/healthz');
          healthz.push(performance.now() - h0);
        }
      } else if (path === 'client') {
        const t0 = performance.now();
        const body = await client.createToolBatch(uses, { batchTimeoutMs: cfg.timeoutMs });
        wall = performance.now() - t0;
        inner = body.stats.wall_ms;
        errors = body.tool_results.filter((r) => r.is_error).length;
      } else {
        const t0 = performance.now();
        const result = await dispatcher.dispatch(uses, { timeoutMs: cfg.timeoutMs });
        wall = performance.now() - t0;
        inner = result.wallMs;
        errors = result.toolResults.filter((r) => r.is_error).length;
      }
      if (!record) return;
      const s = samples[path];
      s.errors += errors;
      s.wall.push(wall);
      s.inner.push(inner);
    };
    const paths: HttpPath[] = ['http', 'client', 'library'];
    for (const path of paths) for (let i = 0; i < cfg.warmup; i++) await once(path, false, i);
    let done = 0;
    let round = 0;
    while (done < iterations) {
      const n = Math.min(cfg.block, iterations - done);
      // Rotate who goes first, so none always runs right after another's burst of work.
      const order = paths.map((_, i) => paths[(i + round) % paths.length] as HttpPath);
      for (const path of order) for (let i = 0; i < n; i++) await once(path, true, done + i);
      done += n;
      round++;
    }
    for (const path of paths) {
      const s = samples[path];
      rows.push({
        size,
        path,
        wall: summarize(s.wall),
        dispatcherWall: summarize(s.inner),
        errors: s.errors,
      });
    }
  }
  return { rows, healthz: summarize(healthz) };
}
