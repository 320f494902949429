/**
 * One MCP server as the worker sees it: a client connection (stdio process or Streamable HTTP
 * session) that is started, watched, restarted with backoff when it dies, and reconnected when an
 * HTTP server forgets its session. Its tool list is kept current (`notifications/tools/list_changed`)
 * and is empty while it is down, so the catalog only offers tools that can run.
 */
import { readFileSync } from 'node:fs';
import { type CallToolResult, Client, type Tool, type Transport } from '@modelcontextprotocol/client';
import type { Logger } from '@toolq/shared';
import {
  causeText,
  describeCallError,
  isConnectionClosed,
  isSessionLost,
  isUnreachable,
  McpUnavailableError,
} from './call-errors.ts';
import type { McpServerConfig } from './config.ts';
import { InFlightLimit } from './in-flight-limit.ts';
import { type ConnectionState, type FailureReason, type McpMetrics, recordState } from './metrics.ts';
import { ProcessGroupStdioTransport } from './stdio-transport.ts';
import {
  createTransport,
  describeStartFailure,
  exitReason,
  stderrOf,
  transportClosed,
} from './transports.ts';

/** The worker package's version, as MCP servers see it (package.json is two levels above src/mcp/ and dist/mcp/). */
const WORKER_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/**
 * The MCP request's timeout is the time left to the call's deadline plus this: the call's own
 * AbortSignal fires at the deadline and is what ends it (sending `notifications/cancelled`), so the
 * worker reports it as the usual timeout; the request timeout is only the backstop.
 */
const REQUEST_TIMEOUT_GRACE_MS = 1_000;
/** A connection that stayed up this long starts its next restart from the initial backoff. */
const STABLE_AFTER_MS = 30_000;

export interface ServerConnectionOptions {
  config: McpServerConfig;
  logger: Logger;
  metrics: McpMetrics;
  /** Called whenever `tools` changes (connected, list_changed, down). */
  onToolsChanged: () => void;
}

/** One call's bounds, and where the server's progress notifications go. */
export interface CallOptions {
  signal: AbortSignal;
  deadline?: number;
  onProgress?: (progress: { progress: number; total?: number; message?: string }) => void;
}

export class McpServerConnection {
  readonly name: string;
  private readonly config: McpServerConfig;
  private readonly logger: Logger;
  private readonly limit: InFlightLimit;
  private client: Client | undefined;
  private transport: Transport | undefined;
  /** Bumped per connection attempt: events of an older connection are ignored. */
  private generation = 0;
  private stateValue: ConnectionState = 'connecting';
  private reasonValue = 'starting';
  private toolsValue: Tool[] = [];
  private backoffMs: number;
  private connectedAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private connecting: Promise<boolean> | undefined;
  private reconnecting: Promise<void> | undefined;
  /** The connection whose session was found lost (its other calls are sent again too). */
  private sessionLostGeneration = -1;
  private closed = false;

  constructor(private readonly options: ServerConnectionOptions) {
    this.config = options.config;
    this.name = options.config.name;
    this.logger = options.logger.child({ mcpServer: this.name });
    this.limit = new InFlightLimit(options.config.toolq.maxInFlight);
    this.backoffMs = options.config.toolq.restart.initialBackoffMs;
    recordState(options.metrics, this.name, 'connecting');
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Why the server is not connected (empty when it is). */
  get reason(): string {
    return this.reasonValue;
  }

  /** The server's tools while it is connected; empty otherwise. */
  get tools(): readonly Tool[] {
    return this.toolsValue;
  }

  /** The first connection attempt; resolves true when connected. Never rejects: a failure is retried. */
  start(): Promise<boolean> {
    return this.connect();
  }

  /**
   * Runs `tools/call`, waiting for an in-flight slot first. `deadline` (epoch ms) bounds the request;
   * `signal` cancels it (the server is sent `notifications/cancelled`).
   */
  async call(tool: string, args: Record<string, unknown>, options: CallOptions): Promise<CallToolResult> {
    const release = await this.limit.acquire(options.signal);
    try {
      return await this.callConnected(tool, args, options, true);
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.generation++;
    // Stop the server first: a handshake in progress (up to startupTimeoutMs) then fails at once.
    await this.disconnect();
    await this.connecting?.catch(() => undefined);
    this.setState('closed', 'worker stopped');
  }

  private async callConnected(
    tool: string,
    args: Record<string, unknown>,
    options: CallOptions,
    mayResend: boolean,
  ): Promise<CallToolResult> {
    const client = this.client;
    if (this.stateValue !== 'connected' || !client) {
      throw new McpUnavailableError(
        `MCP server ${this.name} is not connected (${this.reasonValue}); ${this.config.toolq.restart.enabled ? 'the worker is reconnecting, try again shortly' : 'it will not be restarted'}`,
      );
    }
    const generation = this.generation;
    const deadline = options.deadline ?? Date.now() + this.config.toolq.timeoutMs;
    const timeout = Math.max(1, deadline - Date.now()) + REQUEST_TIMEOUT_GRACE_MS;
    try {
      return (await client.callTool(
        { name: tool, arguments: args },
        {
          signal: options.signal,
          timeout,
          // The server's progress goes on to the call's caller (ctx.reportProgress).
          ...(options.onProgress
            ? {
                onprogress: (p: { progress: number; total?: number; message?: string }) =>
                  options.onProgress?.(p),
              }
            : {}),
        },
      )) as CallToolResult;
    } catch (err) {
      if (options.signal.aborted) throw err;
      // The server forgot the session, or this call was cut off by the reconnect another call's
      // lost session started: either way the server could not run it on that session.
      const sessionGone =
        isSessionLost(err) || (isConnectionClosed(err) && this.sessionLostGeneration === generation);
      if (this.config.transport === 'http' && sessionGone) {
        await this.reconnectAfterSessionLoss(generation, err);
        if (mayResend) return this.callConnected(tool, args, options, false);
      } else if (this.config.transport === 'http' && isUnreachable(err) && generation === this.generation) {
        this.connectionLost('unreachable', `unreachable: ${causeText(err)}`);
      }
      throw describeCallError(this.name, err, this.reasonValue);
    }
  }

  private connect(): Promise<boolean> {
    this.connecting ??= this.connectOnce().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectOnce(): Promise<boolean> {
    const generation = ++this.generation;
    this.setState('connecting', this.reasonValue);
    const { startupTimeoutMs } = this.config.toolq;
    const transport = createTransport(this.config, this.logger);
    const client = new Client(
      { name: 'toolq-worker', version: WORKER_VERSION },
      {
        listChanged: {
          tools: {
            debounceMs: 50,
            onChanged: (error, tools) => {
              if (generation !== this.generation) return;
              if (error) this.logger.warn({ err: error.message }, 'MCP tools/list after list_changed failed');
              else if (tools) this.setTools(tools, 'list_changed');
            },
          },
        },
      },
    );
    // Warn: an answer dropped for its size or a broken stream is why a call failed.
    client.onerror = (err) => this.logger.warn({ err: err.message }, 'MCP protocol error');
    this.client = undefined;
    this.transport = transport;
    try {
      await client.connect(transport, { timeout: startupTimeoutMs });
      const { tools } = await client.listTools(undefined, { timeout: startupTimeoutMs });
      if (generation !== this.generation) {
        await client.close().catch(() => undefined);
        return false;
      }
      // Only now: a close during the handshake is a failed start, handled below.
      client.onclose = () => {
        if (generation === this.generation) this.connectionLost('exited', exitReason(transport));
      };
      if (transportClosed(transport)) throw new Error(exitReason(transport));
      this.client = client;
      this.connectedAt = Date.now();
      this.setState('connected', '');
      this.setTools(tools, 'connected');
      this.logger.info({ tools: tools.length }, 'MCP server connected');
      this.startPinging(client, generation);
      return true;
    } catch (err) {
      if (generation !== this.generation || this.closed) return false;
      const spawnFailed = transport instanceof ProcessGroupStdioTransport && transport.couldNotStart;
      const reason = spawnFailed
        ? (transport.exitReason ?? (err as Error).message)
        : `failed to start: ${describeStartFailure(err, transport, this.config.toolq.startupTimeoutMs)}`;
      await client.close().catch(() => undefined);
      await transport.close().catch(() => undefined);
      this.logger.error({ reason, stderr: stderrOf(transport) || undefined }, 'MCP server failed to start');
      this.options.metrics.failures.inc({
        server: this.name,
        reason: spawnFailed
          ? 'spawn_failed'
          : this.config.transport === 'http'
            ? 'unreachable'
            : 'initialize_failed',
      });
      this.scheduleRetry(reason);
      return false;
    }
  }

  /**
   * An HTTP server has no process to watch: a failed ping is how an idle worker learns it is gone.
   * (stdio servers are watched through their process; a busy one must not be killed for a slow ping.)
   */
  private startPinging(client: Client, generation: number): void {
    const every = this.config.toolq.pingIntervalMs;
    if (this.config.transport !== 'http' || every === 0) return;
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (generation !== this.generation) return clearInterval(this.pingTimer);
      client.ping({ timeout: Math.min(every, 5_000) }).catch((err: unknown) => {
        if (generation !== this.generation) return;
        if (isSessionLost(err)) void this.reconnectAfterSessionLoss(generation, err);
        else this.connectionLost('unreachable', `unreachable: ${causeText(err)}`);
      });
    }, every);
    this.pingTimer.unref();
  }

  /** The connection died under us: answer in-flight calls (the SDK rejects them), withdraw the tools, restart. */
  private connectionLost(reason: FailureReason, detail: string): void {
    if (this.closed || this.stateValue !== 'connected') return;
    this.generation++;
    this.logger.error(
      { reason: detail, stderr: stderrOf(this.transport) || undefined },
      'MCP server connection lost',
    );
    this.options.metrics.failures.inc({ server: this.name, reason });
    const client = this.client;
    this.client = undefined;
    void client?.close().catch(() => undefined);
    void this.transport?.close().catch(() => undefined);
    if (Date.now() - this.connectedAt >= STABLE_AFTER_MS)
      this.backoffMs = this.config.toolq.restart.initialBackoffMs;
    this.setTools([], 'down');
    this.scheduleRetry(detail);
  }

  /**
   * One reconnect for all the calls (and pings) of a connection that met the lost session; each
   * waits for it, so every one of them can be sent again on the new session.
   */
  private reconnectAfterSessionLoss(generation: number, err: unknown): Promise<void> {
    if (generation === this.generation && !this.reconnecting) {
      this.sessionLostGeneration = generation;
      this.logger.warn({ err: (err as Error).message }, 'MCP session lost: reconnecting');
      this.options.metrics.failures.inc({ server: this.name, reason: 'session_lost' });
      this.generation++;
      this.reconnecting = (async () => {
        await this.disconnect();
        this.reasonValue = 'session lost';
        this.setTools([], 'down');
        await this.connect();
      })().finally(() => {
        this.reconnecting = undefined;
      });
    }
    return this.reconnecting ?? this.connecting?.then(() => undefined) ?? Promise.resolve();
  }

  private scheduleRetry(reason: string): void {
    const { restart } = this.config.toolq;
    if (!restart.enabled) {
      this.setState('failed', reason);
      return;
    }
    const delay = this.backoffMs;
    this.backoffMs = Math.min(restart.maxBackoffMs, Math.max(1, this.backoffMs) * 2);
    this.setState('reconnecting', reason);
    this.logger.info({ delayMs: delay }, 'MCP server: trying again after a pause');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  private async disconnect(): Promise<void> {
    const client = this.client;
    const transport = this.transport;
    this.client = undefined;
    this.transport = undefined;
    if (client) {
      client.onclose = undefined;
      await client.close().catch(() => undefined);
    }
    await transport?.close().catch(() => undefined);
  }

  private setTools(tools: Tool[], why: string): void {
    this.toolsValue = tools;
    this.logger.debug({ tools: tools.map((t) => t.name), why }, 'MCP tool list');
    this.options.onToolsChanged();
  }

  private setState(state: ConnectionState, reason: string): void {
    this.stateValue = state;
    this.reasonValue = reason;
    recordState(this.options.metrics, this.name, state);
  }
}
