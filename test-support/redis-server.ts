/**
 * Real redis-server processes for tests, benchmarks and the demo: each on a free port in its own
 * temp dir, so a test can kill or restart its Redis without touching anyone else's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolqError } from '@toolq/shared';
import { Redis } from 'ioredis';
import { freePort } from './free-port.ts';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: no goodbye to clients, like a crash. */
  kill(): Promise<void>;
  /** Starts again on the same port (empty: no persistence). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'toolq-redis-'));
  let child: ChildProcess | undefined;

  const start = async () => {
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    );
    child = proc;
    await new Promise<void>((resolve, reject) => {
      proc.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'ENOENT'
            ? new ToolqError(
                'REDIS_UNAVAILABLE',
                'redis-server is not installed or not on the PATH. Install Redis (e.g. `apt-get install ' +
                  'redis-server` or `brew install redis`), or set REDIS_URL to a running Redis.',
                { cause: err },
              )
            : new Error(`cannot start redis-server: ${err.message}`, { cause: err }),
        ),
      );
      proc.once('spawn', () => resolve());
    });
    await waitForPing(port);
  };
  const kill = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPing(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`redis-server on port ${port} did not answer: ${(err as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      client.disconnect();
    }
  }
}
