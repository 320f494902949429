/** Worker processes for tests: the real CLI, started as a child process, so it can be SIGKILLed. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitForReadyLine } from './ready-line.ts';
import { builtEnv, SOURCE_CONDITION } from './run-sources.ts';
import { stopChild } from './stop-child.ts';

const WORKER_CLI = fileURLToPath(new URL('../packages/worker/src/cli.ts', import.meta.url));
const BUILT_WORKER_CLI = fileURLToPath(new URL('../packages/worker/dist/cli.js', import.meta.url));

export interface WorkerProcess {
  readonly id: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** The worker's metrics server (`<url>/metrics`, `/healthz`, `/readyz`) when started with `metrics: true`. */
  readonly metricsUrl?: string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface WorkerProcessOptions {
  redisUrl: string;
  prefix?: string;
  tools?: string;
  /** An MCP config file (`--mcp`); without `tools`, the worker serves only its MCP servers. */
  mcp?: string;
  /**
   * Serve /metrics on a free loopback port instead of `--no-metrics`; `'defaults'`: with no metrics
   * flag at all, as an operator starts it.
   */
  metrics?: boolean | 'defaults';
  pool?: string;
  concurrency?: number;
  env?: Record<string, string>;
  /**
   * Run the built CLI (dist/, plain node, no tsx) instead of the sources: it starts on about half
   * the CPU. Its tools must then be JavaScript. The caller builds first (built-packages.ts).
   */
  built?: boolean;
  /** Node flags before the CLI, e.g. `--import` of a module to preload. */
  nodeArgs?: readonly string[];
}

function spawnWorker(options: WorkerProcessOptions, stdio: 'inherit' | 'pipe'): ChildProcess {
  const args = options.built ? [BUILT_WORKER_CLI] : ['--import', 'tsx', WORKER_CLI];
  const tools = options.tools ?? (options.mcp ? undefined : 'diagnostics');
  if (tools) args.push('--tools', tools);
  if (options.mcp) args.push('--mcp', options.mcp);
  if (options.metrics === true) args.push('--metrics-port', '0', '--metrics-host', '127.0.0.1');
  else if (!options.metrics) args.push('--no-metrics');
  if (options.pool) args.push('--pool', options.pool);
  if (options.concurrency) args.push('--concurrency', String(options.concurrency));
  const node = options.built ? [] : [`--conditions=${SOURCE_CONDITION}`];
  return spawn(process.execPath, [...node, ...(options.nodeArgs ?? []), ...args], {
    env: {
      ...(options.built ? builtEnv() : process.env),
      REDIS_URL: options.redisUrl,
      TOOLQ_PREFIX: options.prefix ?? 'toolq',
      TOOLQ_LOG_LEVEL: process.env.TOOLQ_TEST_LOG_LEVEL ?? 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', stdio],
  });
}

export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const child = spawnWorker(options, 'inherit');
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const { worker: id, metrics } = await waitForReadyLine<{
    event: 'ready';
    worker: string;
    metrics?: string;
  }>(child, exited, 'worker');
  return {
    id,
    ...(metrics ? { metricsUrl: metrics } : {}),
    child,
    exited,
    stop: async (signal = 'SIGTERM') => {
      await stopChild(child, signal);
      return exited;
    },
  };
}

/**
 * The worker CLI started without waiting for it to run: for a misconfiguration it must survive
 * (it keeps retrying Redis). Everything it writes is collected.
 */
export function spawnWorkerProcess(options: WorkerProcessOptions): {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
} {
  const child = spawnWorker(options, 'pipe');
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => Buffer.concat(chunks).toString('utf8') };
}
