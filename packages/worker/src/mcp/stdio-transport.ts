/**
 * The stdio transport for MCP servers the worker starts. Unlike the SDK's StdioClientTransport it
 * starts the server in its own process group and stops the whole group (servers are often
 * `npx`/`uvx`/shell wrappers whose real process is a grandchild), reports the connection closed
 * when the server process exits (not when every holder of its pipes has gone, which an orphaned
 * grandchild can delay forever), and keeps the end of the server's stderr to say why it died.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import { serializeMessage } from '@modelcontextprotocol/client';
import { getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';
import { answeredId, JsonRpcLineReader, type LineEvent, MAX_MESSAGE_BYTES } from './stdio-lines.ts';

const STDERR_TAIL_BYTES = 2_000;

/**
 * Runs the server through `sh` with a guard: a background shell holds a pipe from the worker (fd
 * 3) and kills the whole group when that pipe closes, which happens however the worker ends,
 * SIGKILL and OOM included. Many servers never exit on stdin EOF, so without it a killed worker
 * leaves its servers running. `exec` keeps the server's pid the one the worker spawned.
 */
const GUARD = '(read -r _ <&3; kill -KILL 0) </dev/null >/dev/null 2>&1 & exec "$0" "$@" 3<&-';
/** What `sh` exits with when the command is missing or not executable. */
const NOT_FOUND_CODES = new Set([126, 127]);

export interface StdioTransportOptions {
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd?: string;
  /** Each line the server writes to stderr (its log). */
  onStderrLine?: (line: string) => void;
  /** A line on stdout that is not a JSON-RPC message (a server logging to stdout): skipped. */
  onSkippedLine?: (reason: string, excerpt: string) => void;
  /** How long close() waits after SIGTERM before SIGKILL. Default 2 000 ms. */
  killAfterMs?: number;
}

export class ProcessGroupStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private child: ChildProcess | undefined;
  private readonly reader = new JsonRpcLineReader();
  /** Ids of the requests sent and not yet answered: an answer too large to read is failed by its id. */
  private readonly waiting = new Set<string | number>();
  private stderrTail = '';
  private exitedPromise: Promise<void> | undefined;
  private closedReported = false;
  /** How the process ended, once it has: `exit code 1`, `signal SIGKILL`, `spawn failed: ENOENT`. */
  exitReason: string | undefined;

  constructor(private readonly options: StdioTransportOptions) {}

  /** True once the command turned out not to exist (or not to be executable). */
  get couldNotStart(): boolean {
    return this.exitReason?.startsWith('could not be started') ?? false;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last lines the server wrote to stderr (for the log when it fails). */
  get stderr(): string {
    return this.stderrTail.trim();
  }

  async start(): Promise<void> {
    if (this.child) throw new Error('transport already started');
    const { command, args, env, cwd } = this.options;
    const child = spawn('/bin/sh', ['-c', GUARD, command, ...args], {
      env: { ...getDefaultEnvironment(), ...env },
      cwd,
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      // Its own process group, so that stopping it stops everything it started.
      detached: true,
      shell: false,
    });
    this.child = child;
    this.exitedPromise = new Promise((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => {
        this.exitReason = `could not be started: ${err.message}`;
        reject(new Error(`cannot start ${command}: ${err.message}`));
        this.reportClosed();
      });
    });
    child.once('exit', (code, signal) => {
      this.exitReason ??= signal
        ? `killed by ${signal}`
        : code !== null && NOT_FOUND_CODES.has(code)
          ? `could not be started: ${command} was not found or is not executable`
          : `exited with code ${code}`;
      this.killGroup('SIGKILL'); // anything it left behind
      this.reportClosed();
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      for (const event of this.reader.push(chunk)) this.deliver(event);
    });
    let partial = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_TAIL_BYTES);
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') this.options.onStderrLine?.(line);
    });
    for (const stream of [child.stdin, child.stdout, child.stderr]) {
      stream?.on('error', (err) => this.onerror?.(err));
    }
  }

  send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin || this.closedReported || !stdin.writable) {
      return Promise.reject(new Error('the server process is not running'));
    }
    if ('method' in message && 'id' in message) this.waiting.add(message.id);
    else if ('method' in message && message.method === 'notifications/cancelled') {
      // A cancelled request (a timeout, an abort) may never be answered: no longer waited for.
      const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof requestId === 'string' || typeof requestId === 'number') this.waiting.delete(requestId);
    }
    return new Promise((resolve) => {
      if (stdin.write(serializeMessage(message))) resolve();
      else stdin.once('drain', () => resolve());
    });
  }

  /** Ends stdin, then SIGTERM to the group, then SIGKILL; resolves once the process has exited. */
  async close(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      this.exitReason ??= 'stopped by the worker';
      child.stdin?.end();
      this.killGroup('SIGTERM');
      const killAfterMs = this.options.killAfterMs ?? 2_000;
      const timer = setTimeout(() => this.killGroup('SIGKILL'), killAfterMs);
      timer.unref();
      await this.exitedPromise;
      clearTimeout(timer);
    }
    this.killGroup('SIGKILL');
    this.reportClosed();
  }

  private deliver(event: LineEvent): void {
    try {
      switch (event.kind) {
        case 'message': {
          const m = event.message;
          if ('id' in m && m.id !== undefined && !('method' in m)) this.waiting.delete(m.id);
          this.onmessage?.(m);
          return;
        }
        case 'skipped':
          this.options.onSkippedLine?.(event.reason, event.excerpt);
          return;
        case 'overflow':
          this.dropOverflow(event);
          return;
      }
    } catch (err) {
      this.onerror?.(err as Error);
    }
  }

  /** Fails the request an over-long answer was for at once, with the reason (not a timeout later). */
  private dropOverflow(event: Extract<LineEvent, { kind: 'overflow' }>): void {
    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
    const reason = `the server sent a message of ${mb(event.bytes)}, over the ${mb(MAX_MESSAGE_BYTES)} a stdio message may be; it was dropped`;
    const id = answeredId(event, this.waiting);
    this.onerror?.(
      new Error(
        id === undefined
          ? `${reason} (no request waiting could be matched to it)`
          : `${reason} (request ${id})`,
      ),
    );
    if (id === undefined) return;
    this.waiting.delete(id);
    this.onmessage?.({ jsonrpc: '2.0', id, error: { code: -32603, message: reason } });
  }

  private killGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // ESRCH: the group is gone already
    }
  }

  private reportClosed(): void {
    if (this.closedReported) return;
    this.closedReported = true;
    this.reader.reset();
    this.waiting.clear();
    this.child?.stdio[3]?.destroy(); // the guard's pipe
    this.onclose?.();
  }
}
