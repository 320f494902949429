/**
 * Real redis-server processes for tests, benchmarks and the demo: each on a free port in its own
 * temp dir, so a test can kill or restart its Redis without touching anyone else's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolqError } from '@toolq/shared';
import { freePort } from './free-port.ts';
import { adminCommand, type RedisAccess } from './redis-processes.ts';
import { type TestTls, tlsServerArgs } from './tls.ts';
import { waitFor } from './wait-for.ts';

export interface RedisServer {
  readonly port: number;
  /** `redis://` (`rediss://` with TLS), with the password in it when there is one. */
  readonly url: string;
  /** The environment a toolq process needs for this server, without the password in a URL. */
  readonly env: Record<string, string>;
  /** For `adminCommand`. */
  readonly access: RedisAccess;
  /** SIGKILL: no goodbye to clients, like a crash. */
  kill(): Promise<void>;
  /** Starts again on the same port (empty unless started with `appendonly`). */
  start(): Promise<void>;
  /** The certificate the next `start()` serves (a TLS server only): another CA's, to test a client that does not trust it. */
  useTls(tls: TestTls): void;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** Serve TLS only (no plain port) with this CA's server certificate. */
  tls?: TestTls;
  /** `requirepass`. */
  password?: string;
  /**
   * Persistence as docs/deploy.md recommends (`appendonly yes`, `appendfsync everysec`): a restart
   * (`kill()` then `start()`) reads the data back, less up to a second of writes after a SIGKILL.
   */
  appendonly?: boolean;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'toolq-redis-'));
  let child: ChildProcess | undefined;
  // A server restarted with another CA's certificate (`useTls`) keeps its port and dir.
  let tls = options.tls;
  const { password } = options;

  const start = async () => {
    const args = [
      ...(tls ? tlsServerArgs(tls, port) : ['--port', String(port)]),
      ...['--bind', '127.0.0.1', '--save', '', '--dir', dir],
      ...(options.appendonly ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no']),
      ...(password ? ['--requirepass', password] : []),
    ];
    const proc = spawn('redis-server', args, { stdio: 'ignore' });
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
    await waitForPing(port, { password, tls: tls ? { ca: tls.ca } : undefined });
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
  const scheme = tls ? 'rediss' : 'redis';
  return {
    port,
    url: `${scheme}://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`,
    env: {
      REDIS_URL: `${scheme}://127.0.0.1:${port}`,
      ...(password ? { REDIS_PASSWORD: password } : {}),
      ...(tls ? { REDIS_TLS_CA_FILE: tls.caFile } : {}),
    },
    get access() {
      return { password, tls: tls ? { ca: tls.ca } : undefined };
    },
    kill,
    start,
    useTls: (next) => {
      if (!tls) throw new Error('useTls: this server was started without TLS');
      tls = next;
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPing(port: number, access: RedisAccess): Promise<void> {
  await waitFor(
    `redis-server on port ${port} to answer PING`,
    async () => (await adminCommand(port, access, ['ping'])) === 'PONG',
    { timeoutMs: 10_000, intervalMs: 50 },
  );
}
