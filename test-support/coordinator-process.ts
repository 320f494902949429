/** The real coordinator CLI as a child process. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitForReadyLine } from './ready-line.ts';
import { builtEnv, RUN_SOURCES } from './run-sources.ts';

const CLI = fileURLToPath(new URL('../packages/coordinator/src/cli.ts', import.meta.url));
const BUILT_CLI = fileURLToPath(new URL('../packages/coordinator/dist/cli.js', import.meta.url));

export async function startCoordinatorProcess(
  env: Record<string, string>,
  options: {
    /** Default 0: any free one. */
    port?: number;
    /** The built CLI (dist/, plain node, no tsx): about half the CPU to start. The caller builds first. */
    built?: boolean;
    /** Node flags before the CLI, e.g. `--import` of a module to preload. */
    nodeArgs?: readonly string[];
  } = {},
): Promise<{
  url: string;
  /** Its coordinator id (TOOLQ_COORDINATOR_ID, or the one it made up). */
  id: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** What it wrote to stdout so far (its log lines). */
  output(): string;
}> {
  const cli = options.built ? [BUILT_CLI] : [...RUN_SOURCES, CLI];
  const child = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), ...cli, '--port', String(options.port ?? 0)],
    {
      env: { ...(options.built ? builtEnv() : process.env), TOOLQ_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const { url, coordinator: id } = await waitForReadyLine<{
    event: 'ready';
    url: string;
    coordinator: string;
  }>(child, exited, 'coordinator');
  return { url, id, child, exited, output: () => Buffer.concat(chunks).toString('utf8') };
}

/**
 * The coordinator CLI started without waiting for it to serve: for a misconfiguration it must
 * survive (it keeps retrying Redis). Everything it writes is collected, for what a log must not say.
 */
export function spawnCoordinatorProcess(
  env: Record<string, string>,
  /** Default `--port 0`; `null`: no flag (the port then comes from TOOLQ_PORT). */
  options: { port?: number | null } = {},
): {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
} {
  const port = options.port === null ? [] : ['--port', String(options.port ?? 0)];
  const child = spawn(process.execPath, [...RUN_SOURCES, CLI, ...port], {
    env: { ...process.env, TOOLQ_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => Buffer.concat(chunks).toString('utf8') };
}
