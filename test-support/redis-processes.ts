/**
 * One redis-server (or sentinel) process a test starts, kills and restarts by its own pid, and
 * the few admin helpers the cluster and sentinel topologies share.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis, type RedisOptions } from 'ioredis';
import { waitFor } from './wait-for.ts';

export const run = promisify(execFile);

/** How a test's admin connection reaches a node: its password (a string, as before), and TLS with the CA it trusts. */
export type RedisAccess =
  | string
  | { password?: string | undefined; tls?: { ca: string } | undefined }
  | undefined;

function accessOptions(access: RedisAccess): RedisOptions {
  const { password, tls } =
    typeof access === 'string' ? { password: access, tls: undefined } : (access ?? {});
  return { ...(password ? { password } : {}), ...(tls ? { tls: { ca: tls.ca } } : {}) };
}

export interface RedisProcess {
  readonly port: number;
  readonly isRunning: boolean;
  /** SIGKILL: no goodbye to clients or replicas, like a crash. */
  kill(): Promise<void>;
  /**
   * SIGSTOP / SIGCONT: a node frozen for a while, e.g. a replica that falls behind its master (what
   * asynchronous replication under load does) before the master dies.
   */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void;
  /** Starts again with the same arguments (same dir: a cluster node keeps its nodes.conf). */
  start(): Promise<void>;
}

/** redis-server ended before it answered: most often its port was taken in the meantime. */
export class RedisExitedAtStart extends Error {
  constructor(readonly port: number) {
    super(`redis-server on port ${port} exited at start (its port or bus port taken?)`);
  }
}

export function redisProcess(port: number, args: readonly string[], access?: RedisAccess): RedisProcess {
  let child: ChildProcess | undefined;
  const self: RedisProcess = {
    port,
    get isRunning() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      const proc = spawn('redis-server', [...args], { stdio: 'ignore' });
      child = proc;
      await new Promise<void>((resolve, reject) => {
        proc.once('error', (err) =>
          reject(new Error(`cannot start redis-server (is it installed and on the PATH?): ${err.message}`)),
        );
        proc.once('spawn', () => resolve());
      });
      await waitFor(
        `redis-server on port ${port} to answer PING`,
        async () => {
          // A server that exits at once will never answer: say so now (a port taken between
          // freePort() and its bind is the usual reason), so the caller can try other ports.
          if (proc.exitCode !== null || proc.signalCode !== null) throw new RedisExitedAtStart(port);
          const reply = await adminCommand(port, access, ['ping']).catch(() => undefined);
          return reply === 'PONG';
        },
        { timeoutMs: 10_000, fatal: (err) => err instanceof RedisExitedAtStart },
      );
    },
    signal(signal) {
      if (!child?.kill(signal)) throw new Error(`redis-server on port ${port} is not running`);
    },
    async kill() {
      const proc = child;
      child = undefined;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGKILL');
      await exited;
    },
  };
  return self;
}

/** One command on a short-lived connection of its own that never waits through an outage. */
export async function adminCommand(
  port: number,
  access: RedisAccess,
  command: readonly (string | number)[],
): Promise<unknown> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    ...accessOptions(access),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 2_000,
    commandTimeout: 5_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const [name, ...rest] = command;
    return await client.call(String(name), ...rest.map(String));
  } finally {
    client.disconnect();
  }
}

/** `INFO`-style `key:value` lines as a map. */
export function infoFields(text: unknown): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of String(text).split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0) map.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return map;
}
