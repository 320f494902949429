/**
 * What the demo starts for itself: a private redis-server on a free port in a temp dir (only when
 * no REDIS_URL is given) and worker processes running the real worker CLI. Each start returns a
 * stop function; the demo stops everything it started, in reverse order, whatever happens.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { ToolqError } from '@toolq/shared';

export interface Started {
  stop(): Promise<void>;
}

export interface PrivateRedis extends Started {
  url: string;
}

const READY_TIMEOUT_MS = 20_000;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port')),
      );
    });
  });
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'toolq-demo-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn('redis-server', [...args, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => stopChild(child).finally(() => rmSync(dir, { recursive: true, force: true }));
  try {
    await waitForLine(child, (line) => /ready to accept connections/i.test(line), 'redis-server');
  } catch (err) {
    await stop();
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ToolqError(
        'REDIS_UNAVAILABLE',
        'redis-server is not installed or not on the PATH. Install Redis (e.g. `apt-get install redis-server` ' +
          'or `brew install redis`), or set REDIS_URL to a running Redis.',
        { cause: err },
      );
    }
    throw err;
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}

export interface WorkerProcessOptions {
  redisUrl: string;
  prefix: string;
  /** A built-in tool module name or a module path. */
  tools?: string;
  /** An MCP config file (`--mcp`). */
  mcp?: string;
  /** Default: the worker's own (32). */
  concurrency?: number;
}

export interface WorkerProcess extends Started {
  id: string;
}

/** The real `toolq-worker` CLI in a child process, resolved through the worker package. */
export async function startWorkerProcess(options: WorkerProcessOptions): Promise<WorkerProcess> {
  const require = createRequire(import.meta.url);
  const cli = join(dirname(require.resolve('@toolq/worker')), 'cli.ts');
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  const args = ['--import', tsx, cli, '--no-metrics'];
  if (options.tools) args.push('--tools', options.tools);
  if (options.mcp) args.push('--mcp', options.mcp);
  if (options.concurrency) args.push('--concurrency', String(options.concurrency));
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      REDIS_URL: options.redisUrl,
      TOOLQ_PREFIX: options.prefix,
      TOOLQ_LOG_LEVEL: process.env.TOOLQ_LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let id = '';
  try {
    await waitForLine(
      child,
      (line) => {
        const event = parseJson(line);
        if (event?.event !== 'ready' || typeof event.worker !== 'string') return false;
        id = event.worker;
        return true;
      },
      'toolq-worker',
    );
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { id, stop: () => stopChild(child) };
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves at the first stdout line `ready` accepts; rejects with the output tail if the child dies first. */
function waitForLine(child: ChildProcess, ready: (line: string) => boolean, name: string): Promise<void> {
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  if (child.stderr) createInterface({ input: child.stderr }).on('line', keep);
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} was not ready after ${READY_TIMEOUT_MS} ms:\n${tail.join('\n')}`)),
      READY_TIMEOUT_MS,
    );
    timer.unref();
    const done = (err?: Error) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    };
    child.once('error', (err) => done(err));
    child.once('exit', (code, signal) =>
      done(new Error(`${name} exited (${signal ?? code}) before it was ready:\n${tail.join('\n')}`)),
    );
    if (!child.stdout) return done(new Error(`${name} has no stdout`));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      keep(line);
      if (ready(line)) done();
    });
  });
}

/** SIGTERM (a graceful stop), SIGKILL if it has not exited within the grace period. */
async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  timer.unref();
  await exited;
  clearTimeout(timer);
}
