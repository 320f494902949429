/**
 * What the MCP tests share: a private Redis, a real worker process started with `--mcp <file>`,
 * a real Dispatcher, and the paths of the real MCP servers they run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dispatcher } from '@toolq/coordinator';
import { testLogger } from '../../../test-support/logger.ts';
import { type RedisServer, startRedisServer } from '../../../test-support/redis-server.ts';
import { startWorkerProcess, type WorkerProcess } from '../../../test-support/worker-process.ts';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
export const EVERYTHING = here('../node_modules/@modelcontextprotocol/server-everything/dist/index.js');
export const FILESYSTEM = here('../node_modules/@modelcontextprotocol/server-filesystem/dist/index.js');
export const FIXTURE = here('./mcp-fixture-server.mjs');
export const NODE = process.execPath;

export interface McpEnv {
  redis: RedisServer;
  dispatcher: Dispatcher;
  dir: string;
  /** Writes `{ mcpServers }` into the temp dir and returns its path. */
  writeConfig(name: string, mcpServers: Record<string, unknown>): string;
  startWorker(configPath: string, options?: { metrics?: boolean }): Promise<WorkerProcess>;
  call(
    toolUses: { id: string; name: string; input: unknown }[],
    options?: { timeoutMs?: number; failurePolicy?: 'continue' | 'abort' | 'retry' },
  ): ReturnType<Dispatcher['dispatch']>;
  /** Names in the catalog with a live worker, fresh from Redis. */
  liveTools(): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startMcpEnv(): Promise<McpEnv> {
  const redis = await startRedisServer();
  const dispatcher = new Dispatcher({ redisUrl: redis.url, logger: testLogger() });
  await dispatcher.start();
  const dir = mkdtempSync(join(tmpdir(), 'toolq-mcp-'));
  const workers: WorkerProcess[] = [];
  return {
    redis,
    dispatcher,
    dir,
    writeConfig(name, mcpServers) {
      const path = join(dir, name);
      writeFileSync(path, JSON.stringify({ mcpServers }, null, 2));
      return path;
    },
    async startWorker(configPath, options = {}) {
      const worker = await startWorkerProcess({
        redisUrl: redis.url,
        mcp: configPath,
        metrics: options.metrics,
      });
      workers.push(worker);
      await dispatcher.catalog.refresh();
      return worker;
    },
    call: (toolUses, options = {}) => dispatcher.dispatch(toolUses, { timeoutMs: 15_000, ...options }),
    async liveTools() {
      await dispatcher.catalog.refresh();
      return dispatcher.catalog
        .list()
        .filter((t) => t.liveWorkers > 0)
        .map((t) => t.name);
    },
    async stop() {
      await Promise.all(workers.map((w) => w.stop()));
      await dispatcher.close();
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Pids of the direct children of a process (the MCP servers a worker started). */
export function childPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there is none
  }
}

/** The command line of a process, or undefined when it is gone. */
export function commandOf(pid: number): string | undefined {
  try {
    return execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return commandOf(pid) !== undefined && !/<defunct>/.test(commandOf(pid) ?? '');
  } catch {
    return false;
  }
}
